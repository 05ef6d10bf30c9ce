"""TimeLimit ends fit at the epoch end after which the next epoch would pass the limit."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hydra.utils import instantiate

from flexunet.training.callbacks import TimeLimit


class FakeClock:
    """Advances by the next of ``steps`` seconds at every reading."""

    def __init__(self, steps: list[float]) -> None:
        self.now = 0.0
        self.steps = list(steps)

    def __call__(self) -> float:
        self.now += self.steps.pop(0)
        return self.now


def tiny_fit(callback: TimeLimit, epochs: int) -> int:
    """Epochs that ``fit`` ran with ``callback``."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((4, 2), np.float32)
    history = model.fit(x, x[:, :1], epochs=epochs, callbacks=[callback], verbose=0)
    return len(history.history["loss"])


def test_stops_when_the_next_epoch_would_exceed_the_limit() -> None:
    # 60 s per epoch, 3.5 min: after epoch 3 (180 s) a fourth would end at 240 s > 210 s.
    callback = TimeLimit(minutes=3.5, clock=FakeClock([0.0] + [60.0] * 10))
    assert tiny_fit(callback, epochs=10) == 3
    assert callback.stopped_epoch == 2


def test_follows_the_last_epoch_duration() -> None:
    # A slow first epoch (graph tracing), then 10 s epochs, limit 4 min: epoch 15 ends at
    # 240 s; after epoch 14 (230 s) a 10 s epoch still fits, after epoch 15 none does.
    callback = TimeLimit(minutes=4, clock=FakeClock([0.0, 100.0] + [10.0] * 30))
    assert tiny_fit(callback, epochs=30) == 15


def test_does_not_stop_within_the_limit() -> None:
    callback = TimeLimit(minutes=10, clock=FakeClock([0.0] + [1.0] * 10))
    assert tiny_fit(callback, epochs=5) == 5
    assert callback.stopped_epoch is None


def test_rejects_a_non_positive_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        TimeLimit(minutes=0)


def test_ph2_experiment_uses_it(compose) -> None:
    cfg = compose(["experiment=ph2", "train.callbacks.time_limit.minutes=1.5"])
    callback = instantiate(cfg.train.callbacks.time_limit)
    assert isinstance(callback, TimeLimit) and callback.limit_s == 90.0
    assert "time_limit" not in compose([]).train.callbacks
