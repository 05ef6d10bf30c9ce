"""The fused BatchNormalization computes what Keras' BatchNormalization computes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from flexunet.models.normalization import BatchNormalization


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def _pair(channels: int, **kwargs) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    """A Keras BatchNormalization and a fused one with the same, non-trivial weights."""
    rng = np.random.default_rng(1)
    keras_bn = keras.layers.BatchNormalization(**kwargs)
    fused = BatchNormalization(**kwargs)
    for layer in (keras_bn, fused):
        layer.build((None, 6, 10, channels))
    gamma = rng.normal(1.0, 0.2, channels).astype("float32")
    beta = rng.normal(0.0, 0.2, channels).astype("float32")
    for layer in (keras_bn, fused):
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return keras_bn, fused


def _train_step(layer, x, weights):
    """Outputs, gradients (input, gamma, beta) and moving statistics after one training call."""
    x = tf.cast(x, layer.compute_dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    grads = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
    return [y, *grads, layer.moving_mean, layer.moving_variance]


@pytest.mark.parametrize(
    ("policy", "atol"), [("float32", 1e-4), ("mixed_bfloat16", 2e-2)], indirect=["policy"]
)
def test_training_pass_matches_keras(policy: str, atol: float) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (4, 6, 10, 8)).astype("float32")
    weights = rng.normal(size=x.shape).astype("float32")
    keras_bn, fused = _pair(8, momentum=0.9)
    expected = _train_step(keras_bn, x, weights)
    got = _train_step(fused, x, weights)
    names = ("outputs", "input gradient", "gamma gradient", "beta gradient", "moving mean",
             "moving variance")
    for name, want, have in zip(names, expected, got, strict=True):
        want = np.asarray(tf.cast(want, "float32"))
        have = np.asarray(tf.cast(have, "float32"))
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(have, want, atol=atol * scale, err_msg=name)
    assert got[0].dtype == keras_bn.compute_dtype
    # the moving statistics moved from (0, 1) towards the batch's (about 2 and 9)
    assert 0.1 < float(np.mean(got[4])) < 0.3 and 1.5 < float(np.mean(got[5])) < 2.0


def test_inference_and_unfusable_options_take_keras_path() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    keras_bn, fused = _pair(3)
    np.testing.assert_allclose(fused(x, training=False), keras_bn(x, training=False), atol=1e-6)
    # BatchNorm over another axis (channels first) is Keras' own computation
    first = BatchNormalization(axis=1)
    assert not first._fusable(tf.constant(x), True, None)
    assert not BatchNormalization(synchronized=True)._fusable(tf.constant(x), True, None)
    assert not BatchNormalization(renorm=True)._fusable(tf.constant(x), True, None)
    assert not fused._fusable(tf.constant(x), False, None)
    assert fused._fusable(tf.constant(x), True, None)


def test_saves_and_reloads_in_safe_mode(tmp_path) -> None:
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, BatchNormalization(momentum=0.8, name="bn")(inputs))
    model.get_layer("bn").moving_mean.assign([0.5, -1.0])
    path = tmp_path / "bn.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True, compile=False)
    layer = again.get_layer("bn")
    assert type(layer) is BatchNormalization and layer.momentum == pytest.approx(0.8)
    x = np.ones((1, 4, 4, 2), "float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))
