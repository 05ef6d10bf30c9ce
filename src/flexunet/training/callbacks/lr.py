"""Learning-rate callbacks: a plateau reducer whose arguments are all checked, cosine decay."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras


class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau without ``**kwargs``.

    Keras' version accepts and ignores unknown keyword arguments, so a misspelled
    ``patience`` silently falls back to the default and the reducer may never act (see
    docs/performance.md). Here a misspelled argument is a TypeError. The current learning
    rate is added to the epoch logs, so CSV and TensorBoard record it.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.5,
        patience: int = 4,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(
            monitor=monitor, factor=factor, patience=patience, verbose=verbose, mode=mode,
            min_delta=min_delta, cooldown=cooldown, min_lr=min_lr,
        )


class CosineDecay(keras.callbacks.Callback):
    """Cosine learning-rate decay over a run's epochs or its wall-clock budget.

    Before each epoch the learning rate becomes
    ``min_lr + (initial - min_lr) * (1 + cos(pi * progress)) / 2``, with ``initial`` the
    optimizer's learning rate when training starts (read before BackupAndRestore, which runs
    last, restores a resumed run's decayed value). ``progress`` is the fraction of the run
    reached at the middle of the epoch: of ``epochs``, or, when ``minutes`` is given, of that
    budget (the last epoch's duration estimates the next), whichever is further. Following the
    clock matters for runs ended by :class:`~flexunet.training.callbacks.TimeLimit`: on a busy
    machine they do fewer epochs, and the schedule still reaches ``min_lr`` before the limit
    instead of being cut off at a high learning rate. Like TimeLimit, a resumed run gets the
    whole budget again; the epoch count continues. The learning rate is added to the epoch logs.
    """

    def __init__(
        self,
        epochs: int,
        minutes: float | None = None,
        min_lr: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if epochs < 1:
            raise ValueError(f"CosineDecay: epochs must be at least 1, got {epochs}")
        if minutes is not None and minutes <= 0:
            raise ValueError(f"CosineDecay: minutes must be positive, got {minutes}")
        self.epochs = int(epochs)
        self.budget_s = None if minutes is None else 60.0 * float(minutes)
        self.min_lr = float(min_lr)
        self.clock = clock
        self.initial_lr: float | None = None
        self.start = self.last_begin = 0.0
        self.epoch_s = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.initial_lr is None:
            self.initial_lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.initial_lr < self.min_lr:
            raise ValueError(
                f"CosineDecay: min_lr {self.min_lr} is above the optimizer's learning rate "
                f"{self.initial_lr}"
            )
        self.start = self.last_begin = self.clock()
        self.epoch_s = 0.0

    def progress(self, epoch: int, elapsed_s: float) -> float:
        """Fraction of the run reached at the middle of ``epoch`` (0-based), at most 1."""
        fraction = (epoch + 0.5) / self.epochs
        if self.budget_s is not None:
            fraction = max(fraction, (elapsed_s + 0.5 * self.epoch_s) / self.budget_s)
        return min(1.0, fraction)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = self.clock()
        if now > self.last_begin:
            self.epoch_s = now - self.last_begin
        self.last_begin = now
        assert self.initial_lr is not None
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.progress(epoch, now - self.start)))
        self.model.optimizer.learning_rate = self.min_lr + (self.initial_lr - self.min_lr) * cosine

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )
