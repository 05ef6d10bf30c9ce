"""Epoch logs numbered as the console numbers them: train.log, metrics.csv and TensorBoard.

Keras prints ``Epoch 1/20`` but hands callbacks the 0-based index, so its CSVLogger and
TensorBoard callback record epoch 0 for what the console, the epoch-change images and the plots call
epoch 1. These count from 1, like everything else a run writes. :class:`EpochLog` puts the
console's per-epoch line into the Python log, which Hydra writes into ``train.log``.

A learning-rate callback (the plateau reducer, cosine decay) adds the epoch's learning rate to
the logs before these run. Keras' TensorBoard would read the optimizer's rate instead, which
the plateau reducer may just have cut for the next epoch; here TensorBoard records the logged
value, so the console, metrics.csv and TensorBoard show the same rate for an epoch.
TensorBoard's files are written by the ``tensorboard`` package itself (Keras' callback needs
TensorFlow, which a JAX run may not have).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import keras

from flexunet.training.callbacks.events import EventWriter

log = logging.getLogger(__name__)


class EpochLog(keras.callbacks.Callback):
    """One log line per epoch, numbered from 1 like the console:
    ``epoch 3/20 - 12.4s - loss: 0.4123 - lesion_dice: 0.6012 - ... - learning_rate: 0.001``.

    ``conf/hydra/default.yaml`` sends this logger to ``train.log`` only: Keras already prints
    the line on the console (``train.verbose=2``)."""

    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = " - ".join(f"{name}: {float(value):.4g}" for name, value in (logs or {}).items())
        log.info(
            "epoch %d/%d - %.1fs - %s",
            epoch + 1, self.params["epochs"], time.monotonic() - self._started, values,
        )


class MetricsCSV(keras.callbacks.CSVLogger):
    """Keras' CSVLogger with the ``epoch`` column counted from 1."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch + 1, logs)


class TensorBoard(keras.callbacks.Callback):
    """Epoch scalars for TensorBoard, laid out as Keras' TensorBoard callback lays them out
    (``log_dir/train`` and ``log_dir/validation``, tags ``epoch_loss`` ...), epochs counted
    from 1, and the epoch's logged learning rate (else the optimizer's)."""

    def __init__(self, log_dir: str) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writers: dict[str, EventWriter] = {}

    def _writer(self, split: str) -> EventWriter:
        if split not in self._writers:
            self._writers[split] = EventWriter(self.log_dir / split)
        return self._writers[split]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        if "learning_rate" not in logs and self.model is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))
        for name, value in logs.items():
            split = "validation" if name.startswith("val_") else "train"
            self._writer(split).scalar(f"epoch_{name.removeprefix('val_')}", value, epoch + 1)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
