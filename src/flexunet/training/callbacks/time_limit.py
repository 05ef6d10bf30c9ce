"""Stop training at an epoch end when the next epoch would not fit in a wall-clock budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import keras

log = logging.getLogger(__name__)


class TimeLimit(keras.callbacks.Callback):
    """Ends ``fit`` gracefully so that training takes at most ``minutes``.

    The clock starts at the beginning of ``fit``. After each epoch the time that epoch took
    (from the previous epoch's end, so validation and the other callbacks count) is the
    estimate of the next one; when the elapsed time plus that estimate exceeds the limit,
    training stops after this epoch, so checkpoints and logs stay complete. A resumed run
    gets the whole limit again.
    """

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        if minutes <= 0:
            raise ValueError(f"TimeLimit: minutes must be positive, got {minutes}")
        self.limit_s = 60.0 * float(minutes)
        self.clock = clock
        self.start = 0.0
        self.last_end = 0.0
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.start = self.last_end = self.clock()
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = self.clock()
        epoch_s, self.last_end = now - self.last_end, now
        elapsed = now - self.start
        if elapsed + epoch_s > self.limit_s:
            self.model.stop_training = True
            self.stopped_epoch = epoch
            log.warning(
                "TimeLimit: stopping after epoch %d: %.1f of %.1f min used and an epoch takes "
                "%.1f min", epoch + 1, elapsed / 60, self.limit_s / 60, epoch_s / 60,
            )
