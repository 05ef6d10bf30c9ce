"""The fused Adam: the same updates as Keras' Adam, in a model's fit and after a reload."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from flexunet.training.optimizers import Adam


def _trajectory(optimizer: keras.optimizers.Optimizer, grads: list[np.ndarray]) -> np.ndarray:
    """The variable after each gradient, starting from the same seeded values."""
    variable = keras.Variable(np.random.default_rng(0).normal(size=grads[0].shape), dtype="float32")
    optimizer.build([variable])
    steps = []
    for grad in grads:
        optimizer.apply_gradients([(tf.constant(grad, tf.float32), variable)])
        steps.append(variable.numpy().copy())
    return np.stack(steps)


@pytest.mark.parametrize(
    "options",
    [
        {"learning_rate": 1e-2},
        {"learning_rate": 1e-2, "clipvalue": 0.5, "beta_1": 0.8, "epsilon": 1e-4},
        {"learning_rate": keras.optimizers.schedules.ExponentialDecay(1e-2, 2, 0.5)},
        {"learning_rate": 1e-2, "amsgrad": True},  # Keras' own update
    ],
)
def test_same_updates_as_keras_adam(options: dict) -> None:
    rng = np.random.default_rng(1)
    # gradients from large to vanishing: epsilon and the bias corrections both matter
    grads = [rng.normal(size=(64,)) * scale for scale in (1.0, 1e-3, 1e-8, 0.5, 3.0, 1e-2)]
    expected = _trajectory(keras.optimizers.Adam(**options), grads)
    fused = _trajectory(Adam(**options), grads)
    assert np.abs(fused - expected).max() < 1e-6
    assert np.abs(expected[-1] - expected[0]).max() > 1e-3  # the variable did move


def test_fit_trains_and_saves_with_the_fused_adam(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=Adam(learning_rate=0.1), loss="mse")
    history = model.fit(x, y, epochs=30, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < 0.05 * history.history["loss"][0]
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")  # compiled, safe mode
    assert type(reloaded.optimizer) is Adam
    assert reloaded.optimizer.get_config()["learning_rate"] == pytest.approx(0.1)
    assert int(reloaded.optimizer.iterations) == int(model.optimizer.iterations) == 120
