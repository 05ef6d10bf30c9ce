"""Scoring at the original mask resolution, shared by ``flexunet-eval`` and ``flexunet-score``.

Both score one image at a time with the numpy references of
:mod:`flexunet.evaluation.metrics` (:class:`Scorer`) and write the same two files into the
job's run directory (:func:`finish`): ``evaluation.json`` (means over images,
pooled Dice/IoU, provenance) and ``evaluation_per_image.csv`` (one row per image).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flexunet.data.masks import load_mask_rgb
from flexunet.evaluation.metrics import (
    confusion_counts,
    dice_coef_multiclass,
    image_metrics,
    pooled_metrics,
    summarize,
)

log = logging.getLogger(__name__)

METRICS = ("dice", "iou", "threshold_jaccard", "accuracy", "sensitivity", "specificity")
#: The ISIC 2018 scorer's binarisation of mask files: lesion where the grey value > 128.
ISIC_THRESHOLD = 128


class Scorer:
    """Accumulates per-image records and per-class confusion counts."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.records: list[dict[str, Any]] = []  # ids, size and metrics: the CSV rows
        self.metrics: list[dict[str, float]] = []
        self.counts: dict[int, list[tuple[int, int, int, int]]] = {
            c: [] for c in range(1, num_classes)
        }

    def add(
        self, ids: Mapping[str, Any], pred: np.ndarray, true: np.ndarray, probs: np.ndarray
    ) -> None:
        """Score one image: class maps (H, W) and the predicted probabilities (H, W, C).

        ``dice_coef_multiclass`` (the predecessor's soft score) is computed on the
        probabilities, so post-processing does not change it.
        """
        metrics = image_metrics(pred, true, self.num_classes)
        onehot = np.eye(probs.shape[-1], dtype=np.float32)[true]
        metrics["dice_coef_multiclass"] = dice_coef_multiclass(onehot, probs)
        for c, counts in self.counts.items():
            counts.append(confusion_counts(pred, true, c))
        self.metrics.append(metrics)
        self.records.append({**ids, "width": true.shape[1], "height": true.shape[0], **metrics})

    def pooled(self) -> dict[str, float]:
        """Dice/IoU from counts summed over images; per class and their mean for multi-class."""
        per_class = {c: pooled_metrics(counts) for c, counts in self.counts.items()}
        if self.num_classes <= 2:
            return per_class[1]
        out = {k: float(np.mean([m[k] for m in per_class.values()])) for k in ("dice", "iou")}
        for c, metrics in per_class.items():
            out.update({f"{k}_c{c}": v for k, v in metrics.items()})
        return out

    def result(self, **provenance: Any) -> dict[str, Any]:
        """The content of ``evaluation.json``: count, means, pooled values and ``provenance``."""
        return {
            "count": len(self.records),
            "mean": summarize(self.metrics),
            "pooled": self.pooled(),
            **provenance,
        }


def metric_rows(result: Mapping[str, Any]) -> list[tuple[str, float, float | None]]:
    """``(metric, mean over images, pooled or None)``: the main metrics, then per class."""
    mean, pooled = result["mean"], result["pooled"]
    names = [*METRICS, "dice_coef_multiclass"]
    names += [k for k in mean if k not in names]  # the per-class metrics
    return [(name, mean[name], pooled.get(name)) for name in names]


def format_table(result: Mapping[str, Any]) -> str:
    """A short text table: one metric per line, mean over images and pooled."""
    lines = [f"{'metric':<24}{'mean':>9}{'pooled':>9}"]
    for name, mean, pooled in metric_rows(result):
        pooled_text = f"{pooled:>9.4f}" if pooled is not None else ""
        lines.append(f"{name:<24}{mean:>9.4f}{pooled_text}")
    return "\n".join(lines)


def write_report(run_dir: Path, result: Mapping[str, Any], records: Sequence[Mapping]) -> None:
    """``evaluation.json`` and ``evaluation_per_image.csv`` into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    with (run_dir / "evaluation_per_image.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def finish(run_dir: Path, title: str, result: dict[str, Any], records: list) -> dict[str, Any]:
    """Write the report into ``run_dir``, print its table and return ``result``."""
    write_report(run_dir, result, records)
    print(f"{title}: {result['count']} image(s) scored at their original size\n"
          f"{format_table(result)}")
    log.info("wrote %s and %s", run_dir / "evaluation.json", run_dir / "evaluation_per_image.csv")
    return result


#: The per-image metrics of a worst-images table.
WORST_COLUMNS = ("stem", "dice", "iou", "threshold_jaccard", "image")


def worst_rows(records: Sequence[Mapping[str, Any]], count: int) -> dict[str, list[dict]]:
    """The ``count`` lowest-Dice images of each source (``all`` without sources), worst
    first: where a model fails, per dataset."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(str(record.get("source", "all")), []).append(record)
    return {
        name: [
            {k: r[k] for k in WORST_COLUMNS}
            for r in sorted(rows, key=lambda r: r["dice"])[:count]
        ]
        for name, rows in sorted(groups.items())
    }


def write_worst_csv(path: Path, worst: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """``worst.csv``: source, rank and :data:`WORST_COLUMNS` of :func:`worst_rows`."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["source", "rank", *WORST_COLUMNS])
        writer.writeheader()
        for name, rows in worst.items():
            writer.writerows({"source": name, "rank": i, **r} for i, r in enumerate(rows, 1))


def read_binary_mask(path: Path) -> np.ndarray:
    """The ISIC scorer's reading: palettes expanded, grey (first) channel > 128 is lesion."""
    return (load_mask_rgb(path)[..., 0] > ISIC_THRESHOLD).astype(np.uint8)
