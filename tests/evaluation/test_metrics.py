"""Evaluation metrics: the numpy references against hand-worked masks."""

from __future__ import annotations

import numpy as np
import pytest

from flexunet.evaluation.metrics import (
    confusion_counts,
    dice_coef_multiclass,
    image_metrics,
    pooled_metrics,
    summarize,
)
from flexunet.training.metrics import DiceCoefMulticlass

# Truth: a 2x2 lesion in the top-left corner (4 pixels).
TRUE_4X4 = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
    ]
)
# Prediction: 3 of the 4 lesion pixels plus 1 false positive in the far corner.
PRED_4X4 = np.array(
    [
        [1, 1, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 1],
        [0, 0, 0, 0],
    ]
)


def test_confusion_counts_by_hand() -> None:
    # tp = 3, fp = 1 (corner), fn = 1 (pixel (1,1)), tn = 16 - 5 = 11
    assert confusion_counts(PRED_4X4, TRUE_4X4, 1) == (3, 1, 1, 11)
    # for the background class the roles swap: tp = 11, fp = 1, fn = 1, tn = 3
    assert confusion_counts(PRED_4X4, TRUE_4X4, 0) == (11, 1, 1, 3)


def test_image_metrics_by_hand() -> None:
    m = image_metrics(PRED_4X4, TRUE_4X4, num_classes=2)
    assert set(m) == {"dice", "iou", "threshold_jaccard", "accuracy", "sensitivity", "specificity"}
    assert m["dice"] == pytest.approx(6 / 8)  # 2*3 / (2*3 + 1 + 1) = 0.75
    assert m["iou"] == pytest.approx(3 / 5)  # 3 / (3 + 1 + 1) = 0.6
    assert m["threshold_jaccard"] == 0.0  # 0.6 < 0.65
    assert m["accuracy"] == pytest.approx(14 / 16)  # 2 wrong pixels out of 16
    assert m["sensitivity"] == pytest.approx(3 / 4)  # 3 of 4 lesion pixels found
    assert m["specificity"] == pytest.approx(11 / 12)  # 11 of 12 background pixels kept


def test_sigmoid_num_classes_one_matches_two() -> None:
    assert image_metrics(PRED_4X4, TRUE_4X4, 1) == image_metrics(PRED_4X4, TRUE_4X4, 2)


def test_threshold_jaccard_kept_at_cutoff() -> None:
    # 13 lesion pixels all found plus 7 false positives: iou = 13/20 = 0.65 exactly -> kept
    true = np.zeros(25, dtype=int)
    true[:13] = 1
    pred = np.zeros(25, dtype=int)
    pred[:20] = 1
    m = image_metrics(pred.reshape(5, 5), true.reshape(5, 5), 2)
    assert m["iou"] == pytest.approx(0.65)
    assert m["threshold_jaccard"] == pytest.approx(0.65)


def test_both_empty() -> None:
    empty = np.zeros((3, 3), dtype=int)
    m = image_metrics(empty, empty, 2)
    # nothing to find and nothing wrongly found: every score is perfect
    assert m == {
        "dice": 1.0,
        "iou": 1.0,
        "threshold_jaccard": 1.0,
        "accuracy": 1.0,
        "sensitivity": 1.0,
        "specificity": 1.0,
    }


def test_prediction_empty_truth_not() -> None:
    true = np.zeros((3, 3), dtype=int)
    true[1, 1] = 1
    m = image_metrics(np.zeros((3, 3), dtype=int), true, 2)
    assert m["dice"] == 0.0 and m["iou"] == 0.0 and m["threshold_jaccard"] == 0.0
    assert m["sensitivity"] == 0.0  # the one lesion pixel was missed
    assert m["specificity"] == 1.0  # 8 / 8 background pixels kept
    assert m["accuracy"] == pytest.approx(8 / 9)


def test_truth_empty_prediction_not() -> None:
    pred = np.zeros((3, 3), dtype=int)
    pred[0, 0] = 1
    m = image_metrics(pred, np.zeros((3, 3), dtype=int), 2)
    assert m["dice"] == 0.0 and m["iou"] == 0.0
    assert m["sensitivity"] == 1.0  # no lesion pixels, none missed
    assert m["specificity"] == pytest.approx(8 / 9)


def test_specificity_without_negatives() -> None:
    full = np.ones((2, 2), dtype=int)
    m = image_metrics(full, full, 2)
    assert m["specificity"] == 1.0 and m["dice"] == 1.0


def test_ragged_edge_lesion_on_non_square_image() -> None:
    # 3x5 image, lesion = right-hand border column (3 pixels).
    true = np.zeros((3, 5), dtype=int)
    true[:, 4] = 1
    # prediction finds all 3 and leaks one pixel into the bottom border row at (2, 3)
    pred = true.copy()
    pred[2, 3] = 1
    assert confusion_counts(pred, true, 1) == (3, 1, 0, 11)
    m = image_metrics(pred, true, 2)
    assert m["dice"] == pytest.approx(6 / 7)  # 2*3 / (6 + 1 + 0)
    assert m["iou"] == pytest.approx(3 / 4)
    assert m["threshold_jaccard"] == pytest.approx(3 / 4)  # 0.75 >= 0.65 -> kept
    assert m["accuracy"] == pytest.approx(14 / 15)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="resize"):
        image_metrics(np.zeros((4, 4), dtype=int), np.zeros((4, 5), dtype=int), 2)


def test_multiclass_naming_and_means() -> None:
    true = np.array([[0, 1, 1], [2, 2, 0]])
    pred = np.array([[0, 1, 2], [2, 0, 0]])
    m = image_metrics(pred, true, num_classes=3)
    plain = ["dice", "iou", "threshold_jaccard", "sensitivity", "specificity"]
    assert set(m) == {"accuracy", *plain, *(f"{k}_c1" for k in plain), *(f"{k}_c2" for k in plain)}
    # class 1: pred {(0,1)}, true {(0,1),(0,2)} -> tp 1, fp 0, fn 1, tn 4
    assert m["dice_c1"] == pytest.approx(2 / 3)
    assert m["iou_c1"] == pytest.approx(1 / 2)
    assert m["specificity_c1"] == 1.0
    # class 2: pred {(0,2),(1,0)}, true {(1,0),(1,1)} -> tp 1, fp 1, fn 1, tn 3
    assert m["dice_c2"] == pytest.approx(2 / 4)
    assert m["iou_c2"] == pytest.approx(1 / 3)
    assert m["specificity_c2"] == pytest.approx(3 / 4)
    # plain names are the means over foreground classes
    assert m["dice"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["iou"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert m["threshold_jaccard"] == 0.0  # both per-class IoUs are below 0.65
    assert m["sensitivity"] == pytest.approx(0.5)
    assert m["specificity"] == pytest.approx((1 + 3 / 4) / 2)
    # accuracy is over all classes: 4 of 6 pixels right
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_pooled_differs_from_mean() -> None:
    big = (90, 10, 0, 900)  # large lesion, well found: dice = 180/190
    small = (0, 0, 10, 990)  # small lesion, missed entirely: dice = 0
    per_image_mean = ((180 / 190) + 0.0) / 2  # ~0.474
    pooled = pooled_metrics([big, small])
    assert pooled["dice"] == pytest.approx(180 / 200)  # 2*90 / (180 + 10 + 10) = 0.9
    assert pooled["iou"] == pytest.approx(90 / 110)
    assert pooled["dice"] - per_image_mean > 0.4
    assert pooled_metrics([(0, 0, 0, 16)]) == {"dice": 1.0, "iou": 1.0}


def test_summarize_means_numeric_keys() -> None:
    rows = [{"id": "a", "dice": 1.0, "iou": 0.5}, {"id": "b", "dice": 0.0, "iou": 0.25}]
    assert summarize(rows) == {"dice": 0.5, "iou": 0.375}
    assert summarize([]) == {}


def _all_background_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # 10x10 mask, top two rows lesion: 20 lesion pixels = 20%
    mask = np.zeros((10, 10), dtype=int)
    mask[:2] = 1
    onehot = np.eye(2, dtype=np.float32)[mask][None]
    all_bg = np.zeros_like(onehot)
    all_bg[..., 0] = 1.0
    return mask, onehot, all_bg


def test_predecessor_metric_rewards_all_background() -> None:
    mask, onehot, all_bg = _all_background_case()
    # background: (2*80 + 1) / (80 + 100 + 1) = 161/181; lesion: (0 + 1) / (20 + 0 + 1) = 1/21
    expected = (161 / 181 + 1 / 21) / 2  # ~0.469
    assert dice_coef_multiclass(onehot, all_bg) == pytest.approx(expected)
    true_dice = image_metrics(np.zeros_like(mask), mask, 2)["dice"]
    assert true_dice == 0.0
    assert dice_coef_multiclass(onehot, all_bg) > true_dice + 0.4

    metric = DiceCoefMulticlass()
    metric.update_state(onehot, all_bg)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
