"""BackupAndRestore that also restores the state of the other callbacks."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras

from flexunet.runs.records import write_json_atomic
from flexunet.training.callbacks.base import WatchesCallbacks

# Counters and best values that Keras' callbacks reset in on_train_begin.
STATE_ATTRIBUTES = ("best", "wait", "cooldown_counter", "best_epoch")


def _plain(value: object) -> float | int | str | None:
    if value is None or isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else str(value)  # JSON has no inf


def _restore(value: float | int | str | None) -> float | int | None:
    return float(value) if isinstance(value, str) else value


class BackupAndRestore(WatchesCallbacks, keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore (weights, optimizer state incl. learning rate, epoch) plus the
    counters of the other callbacks: without them a resumed run would restart early-stopping
    and LR-reducer patience and let ModelCheckpoint replace ``best.keras`` with a worse model.

    The trainer binds the other callbacks with :meth:`bind_callbacks` and runs this one last,
    so the state saved at the end of an epoch includes that epoch's updates. The state is
    restored when the first epoch begins, after the others' ``on_train_begin`` has reset them.

    A backup is saved at the end of an epoch once ``interval_s`` seconds have passed since
    training began or since the previous backup (0: after every epoch): a save costs about as
    much as 4 training images at 128x128 (docs/performance.md), and a killed run then repeats
    at most ``interval_s`` seconds plus one epoch.
    """

    def __init__(
        self,
        backup_dir: str,
        double_checkpoint: bool = True,
        delete_checkpoint: bool = True,
        interval_s: float = 0.0,
    ) -> None:
        super().__init__(
            backup_dir, save_freq="epoch", double_checkpoint=double_checkpoint,
            delete_checkpoint=delete_checkpoint,
        )
        self.interval_s = interval_s
        self._saved_at = time.monotonic()
        self._state_path = Path(backup_dir) / "callbacks_state.json"
        self._others: dict[str, keras.callbacks.Callback] = {}
        self._pending: dict | None = None

    def bind_callbacks(self, callbacks: dict[str, keras.callbacks.Callback]) -> None:
        self._others = {name: cb for name, cb in callbacks.items() if cb is not self}

    def completed_epochs(self) -> int:
        """Epochs finished by the run whose backup is in ``backup_dir`` (0: nothing saved)."""
        path = Path(self._training_metadata_path)
        return json.loads(path.read_text())["epoch"] if path.is_file() else 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        self._saved_at = time.monotonic()
        if self._state_path.is_file():
            self._pending = json.loads(self._state_path.read_text())

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._pending is None:
            return
        for name, state in self._pending.items():
            if name in self._others:
                for attribute, value in state.items():
                    setattr(self._others[name], attribute, _restore(value))
        self._pending = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if time.monotonic() - self._saved_at < self.interval_s:
            self._current_epoch, self._last_batch_seen = epoch + 1, 0  # Keras' bookkeeping
            return
        super().on_epoch_end(epoch, logs)
        self._saved_at = time.monotonic()
        state = {
            name: {a: _plain(getattr(cb, a)) for a in STATE_ATTRIBUTES if hasattr(cb, a)}
            for name, cb in self._others.items()
        }
        write_json_atomic(self._state_path, state)
