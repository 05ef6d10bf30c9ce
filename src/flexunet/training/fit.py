"""``model.fit`` on built objects, resuming a killed run's fit, and the run's history."""

from __future__ import annotations

import contextlib
import io
import logging
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from flexunet.errors import ConfigError
from flexunet.runs.records import read_metrics_csv, trim_metrics_csv
from flexunet.training.callbacks import BackupAndRestore

log = logging.getLogger(__name__)


def write_model_summary(model: keras.Model, path: Path) -> None:
    buffer = io.StringIO()
    model.summary(print_fn=lambda line, **_: buffer.write(line + "\n"), line_length=110)
    path.write_text(buffer.getvalue())


def prepare_resume(run_dir: Path, callbacks: list) -> None:
    """Before a resumed fit: check there is something to resume and drop metrics.csv rows of
    epochs that will be trained again."""
    backups = [cb for cb in callbacks if isinstance(cb, BackupAndRestore)]
    if not backups:
        raise ConfigError(
            "resume needs the backup callback (train.callbacks.backup); it was removed"
        )
    done = backups[0].completed_epochs()
    if done == 0 and (run_dir / "checkpoints" / "best.keras").exists():
        raise ConfigError(
            f"{run_dir}: no backup to resume from (the run finished, or was started without "
            "train.callbacks.backup); refusing to train over it. Start a new run instead"
        )
    log.info("resuming %s after %d completed epochs", run_dir, done)
    for cb in callbacks:
        if isinstance(cb, keras.callbacks.CSVLogger):
            dropped = trim_metrics_csv(Path(cb.filename), done)
            if dropped:
                log.warning("%s: dropped %d rows of epochs trained again", cb.filename, dropped)


def full_history(callbacks: list, history: dict) -> dict:
    """The whole run's epoch logs: metrics.csv when a CSVLogger writes one (it also holds
    the epochs before a resume), else this fit's history."""
    for cb in callbacks:
        if isinstance(cb, keras.callbacks.CSVLogger):
            logged = read_metrics_csv(Path(cb.filename))
            logged.pop("epoch", None)
            if logged:
                return logged
    return history


def fit(
    model: keras.Model,
    train_data: Any,
    valid_data: Any,
    callbacks: list[keras.callbacks.Callback],
    *,
    epochs: int,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    verbose: int = 2,
    resume_dir: Path | None = None,
) -> dict[str, list[float]]:
    """Train a compiled ``model`` on ``train_data`` and ``valid_data`` (tf.data datasets or
    Keras PyDatasets); returns the whole run's epoch logs.

    ``resume_dir``: continue the killed run in that directory from its last backup (a
    :class:`BackupAndRestore` among ``callbacks``).
    """
    if resume_dir is not None:
        prepare_resume(resume_dir, callbacks)
    history = model.fit(
        train_data,
        validation_data=valid_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset is shuffled (seeded) by the pipeline
    )
    return full_history(callbacks, history.history)


def summarize_history(history: dict, monitor: str, mode: str) -> dict:
    """Best epoch (1-based) and value of ``monitor``, epoch count and last logged values."""
    values = history.get(monitor)
    if not values:
        raise ConfigError(
            f"train.monitor={monitor!r} is not among the logged values: {sorted(history)}"
        )
    final = {k: float(v[-1]) for k, v in history.items()}
    pick = np.nanargmax if mode == "max" else np.nanargmin
    with contextlib.suppress(ValueError):  # every value NaN: the run diverged
        best = int(pick(values))
        return {
            "best_epoch": best + 1, "best_value": float(values[best]),
            "epochs": len(values), "final": final,
        }
    return {"best_epoch": 0, "best_value": math.nan, "epochs": len(values), "final": final}
