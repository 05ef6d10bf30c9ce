"""flexunet-score: predicted masks against ground truth, paired by stem, binarised at > 128."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flexunet.commands.score import score
from flexunet.errors import DataError
from flexunet.evaluation.scorer import Scorer, format_table
from tests.helpers import SHARED_DATA

HAM_MASKS = SHARED_DATA / "ham10000-mini" / "masks"
METRICS = {"dice", "iou", "threshold_jaccard", "accuracy", "sensitivity", "specificity"}


def _lesion(path: Path) -> np.ndarray:
    """Independent reading: Pillow expands the palette with convert("L"); lesion is > 128."""
    return np.asarray(Image.open(path).convert("L")) > 128


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move a mask down/right, filling with background (no wrap-around)."""
    out = np.zeros_like(mask)
    out[dy:, dx:] = mask[: mask.shape[0] - dy, : mask.shape[1] - dx]
    return out


def _read(run_dir: Path) -> tuple[dict, list[dict]]:
    result = json.loads((run_dir / "evaluation.json").read_text())
    rows = list(csv.DictReader((run_dir / "evaluation_per_image.csv").open()))
    return result, rows


@pytest.mark.shared_data
def test_masks_against_themselves_score_one(compose, tmp_path: Path) -> None:
    cfg = compose([f"pred_dir={HAM_MASKS}", f"gt_dir={HAM_MASKS}"], config_name="score")
    score(cfg, tmp_path / "out")
    result, rows = _read(tmp_path / "out")
    assert result["count"] == len(rows) == 6
    assert set(result["mean"]) >= METRICS | {"dice_coef_multiclass"}
    assert all(v == 1.0 for v in result["mean"].values())
    assert result["pooled"] == {"dice": 1.0, "iou": 1.0}
    assert {(r["width"], r["height"]) for r in rows} == {("600", "450")}


@pytest.mark.shared_data
def test_shifted_masks_score_the_dice_of_their_overlap(
    compose, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    expected, inter_sum, size_sum = {}, 0, 0
    for path in sorted(HAM_MASKS.glob("*.png")):
        truth = _lesion(path)
        pred = _shift(truth, 10, 25)
        # an RGB PNG: the scorer reads the first channel
        Image.fromarray(np.repeat(pred[..., None] * 255, 3, axis=2).astype(np.uint8)).save(
            pred_dir / path.name
        )
        inter = int(np.count_nonzero(pred & truth))
        sizes = int(pred.sum() + truth.sum())
        expected[path.stem] = 2 * inter / sizes
        inter_sum += inter
        size_sum += sizes
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for path in HAM_MASKS.glob("*.png"):  # the original palette PNGs, ISIC 2018 names
        (gt_dir / f"{path.stem}_segmentation.png").symlink_to(path)

    cfg = compose([f"pred_dir={pred_dir}", f"gt_dir={gt_dir}"], config_name="score")
    score(cfg, tmp_path / "out")
    result, rows = _read(tmp_path / "out")
    assert {r["stem"]: float(r["dice"]) for r in rows} == pytest.approx(expected)
    assert 0.5 < min(expected.values()) and max(expected.values()) < 0.99
    assert result["mean"]["dice"] == pytest.approx(np.mean(list(expected.values())))
    assert result["pooled"]["dice"] == pytest.approx(2 * inter_sum / size_sum)
    for row in rows:
        dice, iou = float(row["dice"]), float(row["iou"])
        assert iou == pytest.approx(dice / (2 - dice))
        assert float(row["threshold_jaccard"]) == (iou if iou >= 0.65 else 0.0)
    assert "dice" in capsys.readouterr().out  # the printed table


@pytest.mark.shared_data
def test_missing_prediction_is_an_error_naming_it(compose, tmp_path: Path) -> None:
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    first = sorted(HAM_MASKS.glob("*.png"))[0]
    (pred_dir / first.name).symlink_to(first)
    cfg = compose([f"pred_dir={pred_dir}", f"gt_dir={HAM_MASKS}"], config_name="score")
    with pytest.raises(DataError, match="ISIC_0024355"):
        score(cfg, tmp_path / "out")


def test_prediction_of_another_size_is_an_error(compose, tmp_path: Path) -> None:
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    Image.new("L", (60, 45)).save(pred_dir / "a.png")
    Image.new("L", (600, 450)).save(gt_dir / "a.png")
    cfg = compose([f"pred_dir={pred_dir}", f"gt_dir={gt_dir}"], config_name="score")
    with pytest.raises(DataError, match="a.png: prediction is 60x45"):
        score(cfg, tmp_path / "out")


def test_multiclass_scores_each_class_and_their_mean() -> None:
    true = np.zeros((4, 6), np.uint8)
    true[:, :2], true[:, 2:4] = 1, 2
    pred = true.copy()
    pred[:, 3] = 0  # class 2 loses half its pixels
    scorer = Scorer(num_classes=3)
    scorer.add({"stem": "a"}, pred, true, np.eye(3, dtype=np.float32)[pred])
    result = scorer.result()
    assert result["mean"]["dice_c1"] == 1.0 and result["mean"]["dice_c2"] == pytest.approx(2 / 3)
    assert result["mean"]["dice"] == pytest.approx((1 + 2 / 3) / 2)
    assert result["pooled"]["iou_c2"] == pytest.approx(0.5)
    assert "dice_c2" in format_table(result)
