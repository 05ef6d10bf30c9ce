"""CosineDecay anneals the learning rate over epochs or a wall-clock budget."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from hydra.utils import instantiate

from flexunet.training.callbacks import CosineDecay, TimeLimit
from tests.training.callbacks.test_time_limit import FakeClock


class RecordLR(keras.callbacks.Callback):
    """The learning rate each epoch ran with, and what the epoch logs said."""

    def __init__(self) -> None:
        super().__init__()
        self.used: list[float] = []
        self.logged: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.used.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.logged.append(logs["learning_rate"])


def fit_with(callbacks: list, epochs: int, initial_epoch: int = 0) -> RecordLR:
    """Fit a tiny model (Adam 1e-2) with ``callbacks``; what learning rates the epochs used."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    record = RecordLR()
    x = np.zeros((4, 2), np.float32)
    model.fit(x, x[:, :1], epochs=epochs, initial_epoch=initial_epoch,
              callbacks=[*callbacks, record], verbose=0)
    return record


def expected(initial: float, min_lr: float, progress: float) -> float:
    return min_lr + (initial - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def test_follows_the_epoch_count() -> None:
    record = fit_with([CosineDecay(epochs=4, min_lr=1e-4)], epochs=4)
    want = [expected(1e-2, 1e-4, (e + 0.5) / 4) for e in range(4)]
    np.testing.assert_allclose(record.used, want, rtol=1e-5)
    np.testing.assert_allclose(record.logged, want, rtol=1e-5)
    assert record.used == sorted(record.used, reverse=True)


def test_follows_the_clock_when_it_runs_ahead_of_the_epochs() -> None:
    # 60 s epochs, a 5-minute budget, 100 planned epochs: the clock decides. Readings: train
    # begin (0), then each epoch begin (60 s apart).
    clock = FakeClock([0.0] + [0.0] + [60.0] * 10)
    record = fit_with([CosineDecay(epochs=100, minutes=5, min_lr=0.0, clock=clock)], epochs=5)
    # epoch 0 has no duration estimate yet: (0.5 / 100); later epochs: (elapsed + 30 s) / 300 s
    want = [expected(1e-2, 0.0, 0.005)] + [
        expected(1e-2, 0.0, (60.0 * e + 30.0) / 300.0) for e in range(1, 5)
    ]
    np.testing.assert_allclose(record.used, want, rtol=1e-5)
    assert record.used[-1] < 0.03 * 1e-2  # the last epoch that fits runs near min_lr


def test_ends_near_min_lr_when_a_time_limit_stops_the_run() -> None:
    minutes = 4.0
    clock = FakeClock([0] + [20.0] * 400)
    schedule = CosineDecay(epochs=1000, minutes=minutes, min_lr=1e-5, clock=clock)
    limit = TimeLimit(minutes=minutes, clock=FakeClock([0] + [20.0] * 400))
    record = fit_with([schedule, limit], epochs=1000)
    assert len(record.used) == 12  # 12 x 20 s = 4 min
    assert record.used[-1] < 1e-5 + 0.01 * (1e-2 - 1e-5)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="epochs"):
        CosineDecay(epochs=0)
    with pytest.raises(ValueError, match="minutes"):
        CosineDecay(epochs=5, minutes=0)
    with pytest.raises(ValueError, match="min_lr"):
        fit_with([CosineDecay(epochs=2, min_lr=1.0)], epochs=1)


def test_selectable_in_the_lr_reducer_slot(compose) -> None:
    cfg = compose(["train/callbacks@train.callbacks.lr_reducer=cosine_decay", "train.epochs=7"])
    schedule = instantiate(cfg.train.callbacks.lr_reducer)
    assert isinstance(schedule, CosineDecay)
    assert schedule.epochs == 7 and schedule.budget_s is None


def test_ph2_experiment_anneals_over_its_time_limit(compose) -> None:
    cfg = compose(["experiment=ph2", "train.callbacks.time_limit.minutes=20"])
    schedule = instantiate(cfg.train.callbacks.lr_reducer)
    assert isinstance(schedule, CosineDecay)
    assert schedule.budget_s == 20 * 60


class RestoreDecayedRate(keras.callbacks.Callback):
    """Stands in for BackupAndRestore on a resume: it runs after the schedule and puts back
    the optimizer's saved (decayed) learning rate at the start of training."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate = 1e-5


def test_a_resumed_run_continues_the_schedule_from_the_configured_rate() -> None:
    record = fit_with([CosineDecay(epochs=4), RestoreDecayedRate()], epochs=4, initial_epoch=2)
    want = [expected(1e-2, 0.0, (e + 0.5) / 4) for e in (2, 3)]
    np.testing.assert_allclose(record.used, want, rtol=1e-5)
