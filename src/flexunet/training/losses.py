"""Segmentation losses on probabilities (softmax ``(B,H,W,C)``, or sigmoid ``(B,H,W,1)``).

Both losses return one value per image, so Keras' reduction averages over images and a
``sample_weight`` of shape ``(B,)`` weights whole images.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


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


def cross_entropy_per_image(y_true: Any, y_pred: Any) -> Any:
    """Pixel-mean cross-entropy per image, ``(B,)``: Keras' categorical cross-entropy, or its
    binary cross-entropy for a single sigmoid channel.

    Keras returns one value per pixel; averaging over the pixels here keeps one value per image.
    """
    if y_pred.shape[-1] == 1:
        pixel = keras.losses.binary_crossentropy(y_true, y_pred)
    else:
        pixel = keras.losses.categorical_crossentropy(y_true, y_pred)
    return ops.mean(pixel, axis=tuple(range(1, len(pixel.shape))))


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
        name: str = "ce_dice_loss",
        reduction: str | None = "sum_over_batch_size",
    ) -> None:
        super().__init__(name=name, reduction=reduction)
        self.ce_weight = float(ce_weight)
        self.dice_weight = float(dice_weight)
        self.smooth = float(smooth)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        ce = cross_entropy_per_image(y_true, y_pred)
        dice = 1.0 - soft_dice_per_image(y_true, y_pred, self.smooth, include_background=False)
        return self.ce_weight * ce + self.dice_weight * dice

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "ce_weight": self.ce_weight,
            "dice_weight": self.dice_weight,
            "smooth": self.smooth,
        }


__all__ = ["CEDiceLoss", "SoftDiceLoss", "cross_entropy_per_image", "soft_dice_per_image"]
