"""Numpy reference metrics: what flexunet-eval and flexunet-score report (as the ISIC scorer).

They take integer class-index maps of shape ``(H, W)`` (class 0 = background).

* Empty masks: when prediction and truth are both empty for a class, Dice = IoU =
  threshold Jaccard = sensitivity = 1 (nothing to find, nothing wrongly found); when exactly one
  is empty, Dice = IoU = 0. Sensitivity with no positive truth pixels is 1, specificity with no
  negative truth pixels is 1.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# ISIC 2018 task 1 scores each image's Jaccard as 0 when it falls below this value.
THRESHOLD_JACCARD_CUTOFF = 0.65

Counts = tuple[int, int, int, int]


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
