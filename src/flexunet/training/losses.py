"""Segmentation losses on probabilities (softmax ``(B,H,W,C)``, or sigmoid ``(B,H,W,1)``).

Both losses return one value per image, so Keras' reduction averages over images and a
``sample_weight`` of shape ``(B,)`` weights whole images; pixels are weighted inside an image
(``CEDiceLoss``'s boundary band).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from flexunet.errors import ConfigError


def _spatial_axes(x: Any) -> tuple[int, ...]:
    return tuple(range(1, len(x.shape) - 1))


def soft_dice_per_image(
    y_true: Any, y_pred: Any, smooth: float = 1.0, include_background: bool = False
) -> Any:
    """Soft Dice per image, ``(B,)``, averaged over the scored channels.

    Scored channels: the single channel for sigmoid outputs; otherwise the foreground channels
    ``1..C-1``, plus channel 0 when ``include_background``. ``smooth`` keeps empty/empty at 1.
    """
    channels = y_pred.shape[-1]
    if channels is None:
        raise ValueError("soft Dice needs a known number of output channels")
    if channels > 1 and not include_background:
        y_true = y_true[..., 1:]
        y_pred = y_pred[..., 1:]
    axes = _spatial_axes(y_pred)
    inter = ops.sum(y_true * y_pred, axis=axes)
    denom = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    dice = (2.0 * inter + smooth) / (denom + smooth)
    return ops.mean(dice, axis=-1)


def boundary_band(y_true: Any, width: int) -> Any:
    """1 on the pixels within ``width`` pixels of a lesion border, else 0, ``(B,H,W)``.

    The lesion is every non-background channel of a one-hot mask (the single channel of a
    sigmoid mask); the band is its dilation minus its erosion by a ``2 * width + 1`` square,
    two stride-1 max-pools, so it costs little next to the model.
    """
    lesion = y_true if y_true.shape[-1] == 1 else 1.0 - y_true[..., :1]
    size = 2 * int(width) + 1
    dilated = ops.max_pool(lesion, size, strides=1, padding="same")
    eroded = -ops.max_pool(-lesion, size, strides=1, padding="same")
    return (dilated - eroded)[..., 0]


def cross_entropy_per_image(y_true: Any, y_pred: Any, pixel_weight: Any = None) -> Any:
    """Pixel-mean cross-entropy per image, ``(B,)``: Keras' categorical cross-entropy, or its
    binary cross-entropy for a single sigmoid channel.

    Keras returns one value per pixel; averaging over the pixels here keeps one value per image.
    ``pixel_weight`` ``(B,H,W)`` makes it a weighted mean (weights normalised per image, so a
    uniform weight changes nothing and the term keeps its scale next to the Dice term).
    """
    if y_pred.shape[-1] == 1:
        pixel = keras.losses.binary_crossentropy(y_true, y_pred)
    else:
        pixel = keras.losses.categorical_crossentropy(y_true, y_pred)
    axes = tuple(range(1, len(pixel.shape)))
    if pixel_weight is None:
        return ops.mean(pixel, axis=axes)
    return ops.sum(pixel * pixel_weight, axis=axes) / ops.sum(pixel_weight, axis=axes)


@keras.saving.register_keras_serializable(package="flexunet")
class SoftDiceLoss(keras.losses.Loss):
    """``1 - soft Dice`` per image over the foreground channels (see ``soft_dice_per_image``)."""

    def __init__(
        self,
        smooth: float = 1.0,
        include_background: bool = False,
        name: str = "soft_dice_loss",
        reduction: str | None = "sum_over_batch_size",
    ) -> None:
        super().__init__(name=name, reduction=reduction)
        self.smooth = float(smooth)
        self.include_background = bool(include_background)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        return 1.0 - soft_dice_per_image(y_true, y_pred, self.smooth, self.include_background)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "smooth": self.smooth,
            "include_background": self.include_background,
        }


@keras.saving.register_keras_serializable(package="flexunet")
class CEDiceLoss(keras.losses.Loss):
    """``ce_weight * cross-entropy + dice_weight * (1 - soft foreground Dice)`` per image.

    ``boundary_weight > 0`` weighs the cross-entropy of the pixels within ``boundary_width``
    pixels of the true lesion border ``1 + boundary_weight`` times the others (see
    :func:`boundary_band`): where a lesion's pale rim ends is where these models err most
    (docs/results.md, failure analysis), and the band is two max-pools of the mask, cheap
    next to the model.

    Cross-entropy is Keras' own (see :func:`cross_entropy_per_image`), categorical for softmax
    outputs and binary for a single sigmoid channel: computed from the logits when ``y_pred``
    comes straight from a softmax or sigmoid layer (numerically stable), otherwise from the
    probabilities clipped to ``[eps, 1 - eps]``, so a confident wrong pixel stays finite.
    """

    def __init__(
        self,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        boundary_weight: float = 0.0,
        boundary_width: int = 3,
        name: str = "ce_dice_loss",
        reduction: str | None = "sum_over_batch_size",
    ) -> None:
        super().__init__(name=name, reduction=reduction)
        if boundary_weight < 0:
            raise ConfigError(f"train.loss.boundary_weight={boundary_weight}: must be at least 0")
        if int(boundary_width) < 1:
            raise ConfigError(
                f"train.loss.boundary_width={boundary_width}: must be at least 1 (pixels)"
            )
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)
        self.boundary_weight = float(boundary_weight)
        self.boundary_width = int(boundary_width)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        pixel_weight = None
        if self.boundary_weight > 0:
            band = boundary_band(y_true, self.boundary_width)
            pixel_weight = 1.0 + self.boundary_weight * band
        ce = cross_entropy_per_image(y_true, y_pred, pixel_weight)
        dice = 1.0 - soft_dice_per_image(y_true, y_pred, self.smooth, include_background=False)
        return self.ce_weight * ce + self.dice_weight * dice

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "ce_weight": self.ce_weight,
            "dice_weight": self.dice_weight,
            "smooth": self.smooth,
            "boundary_weight": self.boundary_weight,
            "boundary_width": self.boundary_width,
        }


__all__ = [
    "CEDiceLoss",
    "SoftDiceLoss",
    "boundary_band",
    "cross_entropy_per_image",
    "soft_dice_per_image",
]
