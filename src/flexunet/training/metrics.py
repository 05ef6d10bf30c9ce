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


def _per_image_weights(sample_weight: Any, batch: Any) -> Any:
    """Reduce a per-image or per-pixel sample weight to one weight per image."""
    if sample_weight is None:
        return ops.ones((batch,), dtype="float32")
    w = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    if len(w.shape) == 0:
        return ops.ones((batch,), dtype="float32") * w
    return ops.mean(ops.reshape(w, (batch, -1)), axis=1)


class _LesionOverlap(keras.metrics.Metric):
    """Mean over images of a hard per-image lesion-vs-background overlap score."""

    def __init__(self, name: str | None = None, threshold: float = 0.5, dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.threshold = float(threshold)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def _score(self, tp: Any, fp: Any, fn: Any) -> Any:
        raise NotImplementedError

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        true, pred = _lesion_masks(y_true, y_pred, self.threshold)
        t = ops.reshape(ops.cast(true, "float32"), (ops.shape(true)[0], -1))
        p = ops.reshape(ops.cast(pred, "float32"), (ops.shape(pred)[0], -1))
        tp = ops.sum(t * p, axis=1)
        fp = ops.sum((1.0 - t) * p, axis=1)
        fn = ops.sum(t * (1.0 - p), axis=1)
        scores = self._score(tp, fp, fn)
        weights = _per_image_weights(sample_weight, ops.shape(t)[0])
        self.total.assign_add(ops.sum(scores * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self) -> Any:
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="flexunet")
class LesionDice(_LesionOverlap):
    """Hard per-image lesion Dice averaged over the images seen since the last reset.

    Lesion = argmax class >= 1 (softmax) or probability > ``threshold`` (sigmoid; the threshold
    is unused for softmax). Empty/empty images score 1, matching :func:`image_metrics`.
    """

    def __init__(
        self, name: str = "lesion_dice", threshold: float = 0.5, dtype: Any = None
    ) -> None:
        super().__init__(name=name, threshold=threshold, dtype=dtype)

    def _score(self, tp: Any, fp: Any, fn: Any) -> Any:
        denom = 2.0 * tp + fp + fn
        return ops.where(denom > 0, 2.0 * tp / ops.maximum(denom, 1.0), 1.0)


@keras.saving.register_keras_serializable(package="flexunet")
class LesionIoU(_LesionOverlap):
    """Hard per-image lesion IoU (Jaccard) averaged over images; conventions as LesionDice."""

    def __init__(self, name: str = "lesion_iou", threshold: float = 0.5, dtype: Any = None) -> None:
        super().__init__(name=name, threshold=threshold, dtype=dtype)

    def _score(self, tp: Any, fp: Any, fn: Any) -> Any:
        denom = tp + fp + fn
        return ops.where(denom > 0, tp / ops.maximum(denom, 1.0), 1.0)


@keras.saving.register_keras_serializable(package="flexunet")
class DiceCoefMulticlass(keras.metrics.Metric):
    """The predecessor's soft all-class Dice (see :func:`dice_coef_multiclass`), batch-mean.

    Each batch gives one value; the result is the mean over batches, as the predecessor logged
    it. ``sample_weight`` is ignored, as it was there. Do not read it as lesion Dice: an
    all-background prediction scores high.
    """

    def __init__(
        self, name: str = "dice_coef_multiclass", smooth: float = 1.0, dtype: Any = None
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.smooth = float(smooth)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        del sample_weight  # the predecessor metric never weighted samples
        yt = ops.cast(ops.convert_to_tensor(y_true), "float32")
        yp = ops.cast(ops.convert_to_tensor(y_pred), "float32")
        axes = tuple(range(len(yp.shape) - 1))
        inter = ops.sum(yt * yp, axis=axes)
        denom = ops.sum(yt, axis=axes) + ops.sum(yp, axis=axes)
        value = ops.mean((2.0 * inter + self.smooth) / (denom + self.smooth))
        self.total.assign_add(value)
        self.count.assign_add(1.0)

    def result(self) -> Any:
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smooth": self.smooth}
