"""Losses: hand-worked values, constructor strictness and save/reload with safe_mode."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest

from flexunet.errors import ConfigError
from flexunet.training.losses import (
    CEDiceLoss,
    SoftDiceLoss,
    boundary_band,
    cross_entropy_per_image,
)
from flexunet.training.metrics import DiceCoefMulticlass, LesionDice, LesionIoU


def _onehot(class_map: np.ndarray, channels: int) -> np.ndarray:
    return np.eye(channels, dtype=np.float32)[class_map]


def test_perfect_prediction_gives_zero_loss() -> None:
    rng = np.random.default_rng(0)
    y = _onehot(rng.integers(0, 3, size=(2, 6, 6)), 3)
    assert float(SoftDiceLoss()(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(SoftDiceLoss(include_background=True)(y, y)) == pytest.approx(0.0, abs=1e-6)
    # CE of a clipped perfect prediction is -log(1 - eps) ~ 1e-7
    assert float(CEDiceLoss()(y, y)) == pytest.approx(0.0, abs=1e-5)
    empty = np.zeros((1, 4, 4, 1), dtype=np.float32)
    assert float(SoftDiceLoss()(empty, empty)) == pytest.approx(0.0)  # smooth: empty/empty = 1


def test_soft_dice_sigmoid_by_hand() -> None:
    y_true = np.array([1, 1, 0, 0], dtype=np.float32).reshape(1, 2, 2, 1)
    y_pred = np.array([1, 0, 0, 0], dtype=np.float32).reshape(1, 2, 2, 1)
    # intersection 1, sum(true) + sum(pred) = 3: dice = (2*1 + 1) / (3 + 1) = 0.75
    assert float(SoftDiceLoss()(y_true, y_pred)) == pytest.approx(0.25)
    # smooth = 0: dice = 2/3
    assert float(SoftDiceLoss(smooth=0.0)(y_true, y_pred)) == pytest.approx(1 / 3)


def test_soft_dice_foreground_only_and_per_image_mean() -> None:
    lesion = np.array([[1, 1], [0, 0]])
    y_true = _onehot(np.stack([lesion, lesion]), 2)
    # image 0 perfect; image 1 predicts all background
    y_pred = y_true.copy()
    y_pred[1] = _onehot(np.zeros((2, 2), dtype=int), 2)
    # image 1 foreground: (0 + 1) / (2 + 0 + 1) = 1/3 -> loss 2/3; mean with 0 -> 1/3
    assert float(SoftDiceLoss()(y_true, y_pred)) == pytest.approx(1 / 3)
    # with background, image 1 adds channel 0: (2*2 + 1) / (2 + 4 + 1) = 5/7
    # image 1 dice = (1/3 + 5/7) / 2 = 11/21 -> loss 10/21; mean with 0 -> 5/21
    assert float(SoftDiceLoss(include_background=True)(y_true, y_pred)) == pytest.approx(5 / 21)


def test_ce_dice_by_hand() -> None:
    y_true = _onehot(np.array([[[1]]]), 2)  # one lesion pixel
    y_pred = np.full((1, 1, 1, 2), 0.5, dtype=np.float32)
    ce = math.log(2.0)
    dice = 1.0 - (2 * 0.5 + 1) / (1 + 0.5 + 1)  # 1 - 2/2.5 = 0.2
    assert float(CEDiceLoss()(y_true, y_pred)) == pytest.approx(ce + dice, rel=1e-5)
    assert float(CEDiceLoss(ce_weight=2.0, dice_weight=0.0)(y_true, y_pred)) == pytest.approx(
        2 * ce, rel=1e-5
    )
    # binary CE for one sigmoid channel: truth 1, p = 0.5 -> log 2 again
    yt = np.ones((1, 1, 1, 1), dtype=np.float32)
    yp = np.full((1, 1, 1, 1), 0.5, dtype=np.float32)
    assert float(CEDiceLoss(dice_weight=0.0)(yt, yp)) == pytest.approx(ce, rel=1e-5)


def _clipped_ce_per_image(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The cross-entropy this project wrote by hand before it used Keras': clipped in float32."""
    eps = np.float32(1e-7)
    p = np.clip(y_pred, eps, np.float32(1.0) - eps).astype(np.float64)
    if p.shape[-1] == 1:
        pixel = -(y_true * np.log(p) + (1.0 - y_true) * np.log(1.0 - p))[..., 0]
    else:
        pixel = -(y_true * np.log(p)).sum(-1)
    return pixel.reshape(len(pixel), -1).mean(1)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_keras_cross_entropy_matches_the_per_image_formula(channels: int) -> None:
    rng = np.random.default_rng(channels)
    true_map = rng.integers(0, max(channels, 2), size=(5, 7, 9))
    if channels == 1:
        y_true = true_map[..., None].astype(np.float32)
        y_pred = rng.uniform(1e-9, 1.0, size=(5, 7, 9, 1)).astype(np.float32)
    else:
        y_true = _onehot(true_map, channels)
        y_pred = rng.dirichlet(np.ones(channels), size=(5, 7, 9)).astype(np.float32)
    y_pred[0, 0, 0] = 1.0 - y_true[0, 0, 0]  # a confident wrong pixel: clipped, finite
    expected = _clipped_ce_per_image(y_true, y_pred)
    per_image = np.asarray(cross_entropy_per_image(y_true, y_pred))
    assert per_image.shape == (5,)
    np.testing.assert_allclose(per_image, expected, rtol=1e-6, atol=1e-6)
    loss = CEDiceLoss(dice_weight=0.0)
    assert float(loss(y_true, y_pred)) == pytest.approx(expected.mean(), rel=1e-6, abs=1e-6)
    weights = np.array([1.0, 0.0, 2.0, 0.0, 1.0], dtype=np.float32)  # weighs whole images
    assert float(loss(y_true, y_pred, sample_weight=weights)) == pytest.approx(
        (expected * weights).sum() / 5, rel=1e-6, abs=1e-6
    )


def test_confident_wrong_prediction_is_finite() -> None:
    y_true = _onehot(np.array([[[1, 0]]]), 2)
    y_pred = _onehot(np.array([[[0, 1]]]), 2)
    assert np.isfinite(float(CEDiceLoss()(y_true, y_pred)))


def test_misspelled_argument_raises() -> None:
    with pytest.raises(TypeError):
        SoftDiceLoss(smoth=1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        CEDiceLoss(ce_wieght=1.0)  # type: ignore[call-arg]


def test_config_roundtrip() -> None:
    loss = CEDiceLoss(
        ce_weight=0.5,
        dice_weight=2.0,
        smooth=0.1,
        boundary_weight=3.0,
        boundary_width=2,
        name="x",
        reduction="sum",
    )
    clone = CEDiceLoss.from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    dice = SoftDiceLoss(include_background=True)
    assert SoftDiceLoss.from_config(dice.get_config()).include_background is True


@pytest.mark.parametrize(
    ("loss", "channels"),
    [
        (SoftDiceLoss(), 2),
        (CEDiceLoss(ce_weight=0.5), 2),
        (CEDiceLoss(), 1),
        (SoftDiceLoss(), 1),
        (CEDiceLoss(boundary_weight=4.0, boundary_width=1), 2),
    ],
)
def test_tiny_model_saves_and_reloads_safe_mode(
    tmp_path: Path, loss: keras.losses.Loss, channels: int
) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
    true_map = (x[..., 0] > 0).astype(int)
    y = true_map[..., None].astype(np.float32) if channels == 1 else _onehot(true_map, channels)
    activation = "sigmoid" if channels == 1 else "softmax"
    inp = keras.Input(shape=(8, 8, 3))
    model = keras.Model(inp, keras.layers.Conv2D(channels, 1, activation=activation)(inp))
    model.compile(
        optimizer="adam",
        loss=loss,
        metrics=[LesionDice(threshold=0.4), LesionIoU(), DiceCoefMulticlass()],
    )
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    before = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)

    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    after = loaded.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    expected = {"loss", "lesion_dice", "lesion_iou", "dice_coef_multiclass"}
    assert set(after) == set(before) >= expected
    for key in before:
        assert after[key] == pytest.approx(before[key], abs=1e-5)
    flat = [m for top in loaded.metrics for m in [top, *getattr(top, "metrics", [])]]
    dice = next(m for m in flat if m.name == "lesion_dice")
    assert isinstance(dice, LesionDice) and dice.threshold == pytest.approx(0.4)


def test_boundary_band_by_hand() -> None:
    lesion = np.zeros((1, 8, 8), dtype=int)
    lesion[0, 2:6, 2:6] = 1  # a 4x4 lesion
    band = np.asarray(boundary_band(_onehot(lesion, 2), 1))
    # dilation by a 3x3 square is 6x6 (rows/cols 1..6), erosion 2x2 (3..4): a ring of 36 - 4
    expected = np.zeros((1, 8, 8))
    expected[0, 1:7, 1:7] = 1
    expected[0, 3:5, 3:5] = 0
    np.testing.assert_array_equal(band, expected)
    # the same band from a sigmoid mask; no lesion, no band
    sigmoid_mask = lesion[..., None].astype(np.float32)
    np.testing.assert_array_equal(np.asarray(boundary_band(sigmoid_mask, 1)), expected)
    assert np.asarray(boundary_band(np.zeros((1, 8, 8, 1), np.float32), 2)).sum() == 0


def test_boundary_weight_weighs_border_pixels_cross_entropy() -> None:
    lesion = np.zeros((1, 8, 8), dtype=int)
    lesion[0, 2:6, 2:6] = 1
    y_true = _onehot(lesion, 2)
    y_pred = np.full((1, 8, 8, 2), 0.9, dtype=np.float32) * y_true + 0.05
    y_pred[0, 1, 1] = [0.2, 0.8]  # one wrong pixel on the border band, outside the lesion
    y_pred /= y_pred.sum(-1, keepdims=True)
    pixel_ce = -(y_true * np.log(y_pred)).sum(-1)[0]
    band = np.zeros((8, 8))
    band[1:7, 1:7] = 1
    band[3:5, 3:5] = 0
    weight = 1.0 + 4.0 * band
    expected = (pixel_ce * weight).sum() / weight.sum()
    loss = CEDiceLoss(dice_weight=0.0, boundary_weight=4.0, boundary_width=1)
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    # the border's wrong pixel weighs more than in the plain pixel mean
    assert expected > pixel_ce.mean() * 1.2
    assert float(CEDiceLoss(dice_weight=0.0)(y_true, y_pred)) == pytest.approx(
        pixel_ce.mean(), rel=1e-5
    )


@pytest.mark.parametrize("kwargs", [{"boundary_weight": -1.0}, {"boundary_width": 0}])
def test_boundary_arguments_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=r"train\.loss\.boundary_\w+=.*must be at least"):
        CEDiceLoss(**kwargs)
