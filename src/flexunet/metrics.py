"""Segmentation metrics: numpy references for evaluation and Keras metrics for training logs.

Conventions shared by every function here:

* Numpy references take integer class-index maps of shape ``(H, W)`` (class 0 = background).
* Keras metrics take one-hot ``y_true`` and softmax ``y_pred`` of shape ``(B, H, W, C)`` with
  ``C >= 2``, or a 0/1 ``y_true`` and sigmoid ``y_pred`` of shape ``(B, H, W, 1)``.
* Empty masks: when prediction and truth are both empty for a class, Dice = IoU =
  threshold Jaccard = sensitivity = 1 (nothing to find, nothing wrongly found); when exactly one
  is empty, Dice = IoU = 0. Sensitivity with no positive truth pixels is 1, specificity with no
  negative truth pixels is 1.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

# ISIC 2018 task 1 scores each image's Jaccard as 0 when it falls below this value.
THRESHOLD_JACCARD_CUTOFF = 0.65

Counts = tuple[int, int, int, int]


# --------------------------------------------------------------------------------------------
# numpy references
# --------------------------------------------------------------------------------------------


def _check_maps(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    true = np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from ground-truth shape {true.shape}; "
            "resize the prediction to the mask's resolution first"
        )
    return pred, true


def confusion_counts(pred: np.ndarray, true: np.ndarray, cls: int) -> Counts:
    """``(tp, fp, fn, tn)`` pixel counts of class ``cls`` on two class-index maps."""
    pred, true = _check_maps(pred, true)
    p = pred == cls
    t = true == cls
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    tn = int(p.size - tp - fp - fn)
    return tp, fp, fn, tn


def _dice(tp: int, fp: int, fn: int) -> float:
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2.0 * tp / denom


def _iou(tp: int, fp: int, fn: int) -> float:
    denom = tp + fp + fn
    return 1.0 if denom == 0 else tp / denom


def _class_metrics(counts: Counts) -> dict[str, float]:
    tp, fp, fn, tn = counts
    iou = _iou(tp, fp, fn)
    return {
        "dice": _dice(tp, fp, fn),
        "iou": iou,
        "threshold_jaccard": iou if iou >= THRESHOLD_JACCARD_CUTOFF else 0.0,
        # No positive truth pixels: nothing could be missed (false positives show up elsewhere).
        "sensitivity": 1.0 if tp + fn == 0 else tp / (tp + fn),
        "specificity": 1.0 if tn + fp == 0 else tn / (tn + fp),
    }


def image_metrics(pred: np.ndarray, true: np.ndarray, num_classes: int) -> dict[str, float]:
    """Per-image metrics of a class-index prediction against a class-index truth.

    Returns ``dice``, ``iou``, ``threshold_jaccard`` (ISIC: the Jaccard, or 0.0 when below 0.65),
    ``accuracy`` (pixel accuracy over all classes), ``sensitivity`` and ``specificity``.
    With ``num_classes <= 2`` (sigmoid or two-class softmax) they describe class 1. With more
    classes each foreground class ``c`` gets keys suffixed ``_c{c}`` and the plain keys hold the
    mean over foreground classes (``accuracy`` stays the all-class pixel accuracy). Empty-mask
    conventions are in the module docstring.
    """
    pred, true = _check_maps(pred, true)
    accuracy = float(np.mean(pred == true)) if pred.size else 1.0
    if num_classes <= 2:
        out = _class_metrics(confusion_counts(pred, true, 1))
        out["accuracy"] = accuracy
        return out
    out: dict[str, float] = {}
    per_class = [_class_metrics(confusion_counts(pred, true, c)) for c in range(1, num_classes)]
    for name in per_class[0]:
        out[name] = float(np.mean([m[name] for m in per_class]))
    out["accuracy"] = accuracy
    for c, metrics in enumerate(per_class, start=1):
        for name, value in metrics.items():
            out[f"{name}_c{c}"] = value
    return out


def pooled_metrics(counts: Iterable[Sequence[int]]) -> dict[str, float]:
    """Dataset-level ``dice`` and ``iou`` from per-image ``(tp, fp, fn, tn)`` counts.

    Counts are summed over images before dividing, so large lesions weigh more than in the
    per-image mean (and an empty image whose prediction is also empty adds nothing).
    """
    tp = fp = fn = 0
    for c in counts:
        tp += int(c[0])
        fp += int(c[1])
        fn += int(c[2])
    return {"dice": _dice(tp, fp, fn), "iou": _iou(tp, fp, fn)}


def dice_coef_multiclass(
    y_true_onehot: np.ndarray, y_pred_prob: np.ndarray, smooth: float = 1.0
) -> float:
    """The predecessor project's "Dice", kept only for comparison with its published numbers.

    Mean over all classes, background included, of
    ``(2*sum(y_true*y_pred) + smooth) / (sum(y_true) + sum(y_pred) + smooth)`` with sums over the
    whole batch and soft probabilities. Because the background class dominates the pixel count,
    a prediction that is entirely background still scores high (about 0.47 for a 20% lesion),
    while its real lesion Dice is 0. That is why we report :func:`image_metrics` Dice instead.
    """
    yt = np.asarray(y_true_onehot, dtype=np.float64)
    yp = np.asarray(y_pred_prob, dtype=np.float64)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true shape {yt.shape} differs from y_pred shape {yp.shape}")
    axes = tuple(range(yt.ndim - 1))
    inter = np.sum(yt * yp, axis=axes)
    denom = np.sum(yt, axis=axes) + np.sum(yp, axis=axes)
    return float(np.mean((2.0 * inter + smooth) / (denom + smooth)))


def summarize(per_image: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean over images of every numeric key (non-numeric entries such as ids are skipped).

    A key missing from some images is averaged over the images that have it.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for record in per_image:
        for key, value in record.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                continue
            sums[key] = sums.get(key, 0.0) + float(value)
            counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sums}


# --------------------------------------------------------------------------------------------
# Keras metrics
# --------------------------------------------------------------------------------------------


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


__all__ = [
    "THRESHOLD_JACCARD_CUTOFF",
    "DiceCoefMulticlass",
    "LesionDice",
    "LesionIoU",
    "confusion_counts",
    "dice_coef_multiclass",
    "image_metrics",
    "pooled_metrics",
    "summarize",
]
