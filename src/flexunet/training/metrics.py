"""Keras metrics for the training logs; the same conventions as the numpy references of
:mod:`flexunet.evaluation.metrics` (which evaluation reports).

They take one-hot ``y_true`` and softmax ``y_pred`` of shape ``(B, H, W, C)`` with ``C >= 2``,
or a 0/1 ``y_true`` and sigmoid ``y_pred`` of shape ``(B, H, W, 1)``.

* Empty masks: when prediction and truth are both empty for a class, Dice = IoU =
  threshold Jaccard = sensitivity = 1 (nothing to find, nothing wrongly found); when exactly one
  is empty, Dice = IoU = 0. Sensitivity with no positive truth pixels is 1, specificity with no
  negative truth pixels is 1.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _lesion_masks(y_true: Any, y_pred: Any, threshold: float) -> tuple[Any, Any]:
    """Boolean ``(B, H, W)`` lesion masks: any class >= 1 (argmax) or sigmoid > threshold."""
    channels = y_pred.shape[-1]
    if channels is None:
        raise ValueError("LesionDice/LesionIoU need a known number of output channels")
    if channels == 1:
        pred = ops.squeeze(y_pred, axis=-1) > threshold
        true = ops.squeeze(ops.cast(y_true, "float32"), axis=-1) > 0.5
    else:
        pred = ops.argmax(y_pred, axis=-1) > 0
        true = ops.argmax(y_true, axis=-1) > 0
    return true, pred


def _overlap_counts(y_true: Any, y_pred: Any, threshold: float) -> tuple[Any, Any, Any]:
    """Per-image lesion true positives, false positives and false negatives, each ``(B,)``."""
    true, pred = _lesion_masks(ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred),
                               threshold)
    t = ops.reshape(ops.cast(true, "float32"), (ops.shape(true)[0], -1))
    p = ops.reshape(ops.cast(pred, "float32"), (ops.shape(pred)[0], -1))
    return ops.sum(t * p, axis=1), ops.sum((1.0 - t) * p, axis=1), ops.sum(t * (1.0 - p), axis=1)


def lesion_dice_per_image(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """Hard lesion Dice per image, ``(B,)``; 1 when prediction and truth are both empty."""
    tp, fp, fn = _overlap_counts(y_true, y_pred, threshold)
    denom = 2.0 * tp + fp + fn
    return ops.where(denom > 0, 2.0 * tp / ops.maximum(denom, 1.0), 1.0)


def lesion_iou_per_image(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """Hard lesion IoU (Jaccard) per image, ``(B,)``; 1 when both are empty."""
    tp, fp, fn = _overlap_counts(y_true, y_pred, threshold)
    denom = tp + fp + fn
    return ops.where(denom > 0, tp / ops.maximum(denom, 1.0), 1.0)


def dice_coef_multiclass_batch(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """The predecessor's soft Dice: per channel over the whole batch, then the channel mean."""
    yt = ops.cast(ops.convert_to_tensor(y_true), "float32")
    yp = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    axes = tuple(range(len(yp.shape) - 1))
    inter = ops.sum(yt * yp, axis=axes)
    denom = ops.sum(yt, axis=axes) + ops.sum(yp, axis=axes)
    return ops.mean((2.0 * inter + smooth) / (denom + smooth))


class _PerImageMean(keras.metrics.MeanMetricWrapper):
    """Keras' running mean of a per-image score; a per-pixel ``sample_weight`` weighs each
    image by its mean (Keras' ``Mean`` takes weights of the score's shape only)."""

    def __init__(self, fn: Any, name: str, threshold: float, dtype: Any) -> None:
        super().__init__(fn, name=name, dtype=dtype, threshold=float(threshold))
        self.threshold = float(threshold)
        self._direction = "up"

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if sample_weight is not None:
            w = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
            if len(w.shape) > 1:
                sample_weight = ops.mean(ops.reshape(w, (ops.shape(w)[0], -1)), axis=1)
        super().update_state(y_true, y_pred, sample_weight=sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="flexunet")
class LesionDice(_PerImageMean):
    """Hard per-image lesion Dice averaged over the images seen since the last reset.

    Lesion = argmax class >= 1 (softmax) or probability > ``threshold`` (sigmoid; the threshold
    is unused for softmax). Empty/empty images score 1, matching :func:`image_metrics`.
    """

    def __init__(
        self, name: str = "lesion_dice", threshold: float = 0.5, dtype: Any = None
    ) -> None:
        super().__init__(lesion_dice_per_image, name=name, threshold=threshold, dtype=dtype)


@keras.saving.register_keras_serializable(package="flexunet")
class LesionIoU(_PerImageMean):
    """Hard per-image lesion IoU (Jaccard) averaged over images; conventions as LesionDice."""

    def __init__(self, name: str = "lesion_iou", threshold: float = 0.5, dtype: Any = None) -> None:
        super().__init__(lesion_iou_per_image, name=name, threshold=threshold, dtype=dtype)


@keras.saving.register_keras_serializable(package="flexunet")
class DiceCoefMulticlass(keras.metrics.MeanMetricWrapper):
    """The predecessor's soft all-class Dice (see :func:`dice_coef_multiclass`), batch-mean.

    Each batch gives one value; the result is the mean over batches, as the predecessor logged
    it. ``sample_weight`` is ignored, as it was there. Do not read it as lesion Dice: an
    all-background prediction scores high.
    """

    def __init__(
        self, name: str = "dice_coef_multiclass", smooth: float = 1.0, dtype: Any = None
    ) -> None:
        super().__init__(dice_coef_multiclass_batch, name=name, dtype=dtype, smooth=float(smooth))
        self.smooth = float(smooth)
        self._direction = "up"

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        del sample_weight  # the predecessor metric never weighted samples
        super().update_state(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "smooth": self.smooth}


__all__ = [
    "DiceCoefMulticlass",
    "LesionDice",
    "LesionIoU",
    "dice_coef_multiclass_batch",
    "lesion_dice_per_image",
    "lesion_iou_per_image",
]
