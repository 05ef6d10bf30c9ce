"""Keras metrics of the training logs against the numpy references that evaluation reports."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from flexunet.evaluation.metrics import image_metrics
from flexunet.training.metrics import DiceCoefMulticlass, LesionDice, LesionIoU


def _random_batch(
    rng: np.random.Generator, channels: int, batch: int = 6, size: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(y_true, y_pred, true class maps, predicted lesion maps) with edge cases mixed in."""
    n = max(channels, 2)
    true_map = rng.integers(0, n, size=(batch, size, size))
    true_map[0] = 0  # image 0: both empty
    true_map[1] = 0  # image 1: truth empty, prediction (random) not
    if channels == 1:
        y_true = true_map[..., None].astype(np.float32)
        y_pred = rng.uniform(size=(batch, size, size, 1)).astype(np.float32)
        y_pred[0] = 0.1
        y_pred[2] = 0.2  # image 2: prediction empty, truth not
        pred_map = (y_pred[..., 0] > 0.5).astype(int)
    else:
        y_true = np.eye(channels, dtype=np.float32)[true_map]
        logits = rng.normal(size=(batch, size, size, channels))
        logits[0, ..., 0] += 100.0
        logits[2, ..., 0] += 100.0
        y_pred = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
        pred_map = np.argmax(y_pred, axis=-1)
    return y_true, y_pred, true_map, pred_map


def _numpy_lesion(pred_map: np.ndarray, true_map: np.ndarray, key: str) -> list[float]:
    return [
        image_metrics((p > 0).astype(int), (t > 0).astype(int), 2)[key]
        for p, t in zip(pred_map, true_map, strict=True)
    ]


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_keras_lesion_metrics_match_numpy_and_reset(channels: int) -> None:
    rng = np.random.default_rng(channels)
    yt1, yp1, tm1, pm1 = _random_batch(rng, channels)
    yt2, yp2, tm2, pm2 = _random_batch(rng, channels, batch=3)
    for cls, key in [(LesionDice, "dice"), (LesionIoU, "iou")]:
        metric = cls()
        ref1 = _numpy_lesion(pm1, tm1, key)
        ref2 = _numpy_lesion(pm2, tm2, key)
        assert ref1[0] == 1.0 and ref1[1] == 0.0 and ref1[2] == 0.0  # edge cases present
        metric.update_state(yt1, yp1)
        assert float(metric.result()) == pytest.approx(np.mean(ref1), abs=1e-5)
        metric.update_state(yt2, yp2)  # accumulates over images, not over batches
        assert float(metric.result()) == pytest.approx(np.mean(ref1 + ref2), abs=1e-5)
        metric.reset_state()
        assert float(metric.result()) == 0.0
        metric.update_state(yt2, yp2)
        assert float(metric.result()) == pytest.approx(np.mean(ref2), abs=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_keras_lesion_metrics_in_graph_mode(channels: int) -> None:
    """Through model.evaluate (compiled tf.function) on an identity model."""
    rng = np.random.default_rng(10 + channels)
    y_true, y_pred, true_map, pred_map = _random_batch(rng, channels)
    inp = keras.Input(shape=y_pred.shape[1:])
    model = keras.Model(inp, keras.layers.Activation("linear")(inp))
    model.compile(loss="mse", metrics=[LesionDice(), LesionIoU(), DiceCoefMulticlass()])
    result = model.evaluate(y_pred, y_true, batch_size=4, verbose=0, return_dict=True)
    assert result["lesion_dice"] == pytest.approx(
        np.mean(_numpy_lesion(pred_map, true_map, "dice")), abs=1e-5
    )
    assert result["lesion_iou"] == pytest.approx(
        np.mean(_numpy_lesion(pred_map, true_map, "iou")), abs=1e-5
    )


def test_sigmoid_threshold_is_used() -> None:
    y_true = np.ones((1, 2, 2, 1), dtype=np.float32)
    y_pred = np.full((1, 2, 2, 1), 0.4, dtype=np.float32)
    low, high = LesionDice(threshold=0.3), LesionDice()
    low.update_state(y_true, y_pred)
    high.update_state(y_true, y_pred)
    assert float(low.result()) == 1.0 and float(high.result()) == 0.0


def test_keras_metric_config_roundtrip_and_typo() -> None:
    metric = LesionDice(name="ld", threshold=0.3)
    clone = LesionDice.from_config(metric.get_config())
    assert clone.name == "ld" and clone.threshold == 0.3
    assert DiceCoefMulticlass.from_config(DiceCoefMulticlass(smooth=2.0).get_config()).smooth == 2.0
    with pytest.raises(TypeError):
        LesionDice(treshold=0.5)  # type: ignore[call-arg]


def test_keras_metrics_load_the_configs_of_earlier_checkpoints() -> None:
    """The configs a checkpoint saved before these metrics used keras.metrics.MeanMetricWrapper."""
    dice = LesionDice.from_config({"name": "lesion_dice", "dtype": "float32", "threshold": 0.4})
    assert dice.threshold == pytest.approx(0.4)
    assert dice.get_config() == {"name": "lesion_dice", "dtype": "float32", "threshold": 0.4}
    iou = LesionIoU.from_config({"name": "lesion_iou", "dtype": "float32", "threshold": 0.5})
    assert iou.get_config() == {"name": "lesion_iou", "dtype": "float32", "threshold": 0.5}
    old = {"name": "dice_coef_multiclass", "dtype": "float32", "smooth": 2.0}
    assert DiceCoefMulticlass.from_config(old).get_config() == old


def test_keras_lesion_metrics_weigh_images() -> None:
    rng = np.random.default_rng(7)
    y_true, y_pred, true_map, pred_map = _random_batch(rng, 2)
    ref = np.array(_numpy_lesion(pred_map, true_map, "dice"))
    weights = rng.uniform(size=len(ref)).astype(np.float32)
    expected = (ref * weights).sum() / weights.sum()
    per_image, per_pixel = LesionDice(), LesionDice()
    per_image.update_state(y_true, y_pred, sample_weight=weights)
    # a per-pixel weight counts as its image's mean
    pixels = np.broadcast_to(weights[:, None, None], true_map.shape).copy()
    pixels[:, 0, 0] += 1.0
    pixels[:, 0, 1] -= 1.0
    per_pixel.update_state(y_true, y_pred, sample_weight=pixels)
    assert float(per_image.result()) == pytest.approx(expected, abs=1e-6)
    assert float(per_pixel.result()) == pytest.approx(expected, abs=1e-6)
    # DiceCoefMulticlass ignores weights, as the predecessor's metric did
    plain, weighted = DiceCoefMulticlass(), DiceCoefMulticlass()
    plain.update_state(y_true, y_pred)
    weighted.update_state(y_true, y_pred, sample_weight=weights)
    assert float(weighted.result()) == pytest.approx(float(plain.result()), abs=1e-7)
