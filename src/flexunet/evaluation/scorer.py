"""Honest lesion metrics at the original mask resolution: ``flexunet-eval`` and ``flexunet-score``.

Both score one image at a time with the numpy references of
:mod:`flexunet.evaluation.metrics` and write
the same two files into the job's run directory: ``evaluation.json`` (means over images,
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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from flexunet.config import EvaluateJobConfig
from flexunet.data.masks import decode_mask, load_mask_rgb, parse_rgb_map
from flexunet.data.pairing import Pair, list_image_files, pair_files, require_complete
from flexunet.data.sources import SPLITS, DataSource
from flexunet.data.validate import load_image_rgb
from flexunet.errors import ConfigError, DataError
from flexunet.evaluation.metrics import (
    confusion_counts,
    dice_coef_multiclass,
    image_metrics,
    pooled_metrics,
    summarize,
)
from flexunet.inference.predictor import (
    PredictOptions,
    check_classes,
    inherit_run_config,
    load_model,
    predict_probabilities,
    progress,
    resolve_checkpoint,
    to_class_map,
)
from flexunet.training.runtime import configure_tensorflow

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


def format_table(result: Mapping[str, Any]) -> str:
    """A short text table: one metric per line, mean over images and pooled."""
    mean, pooled = result["mean"], result["pooled"]
    lines = [f"{'metric':<24}{'mean':>9}{'pooled':>9}"]
    names = [*METRICS, "dice_coef_multiclass"]
    for name in names + [k for k in mean if k not in names]:  # then the per-class metrics
        pooled_text = f"{pooled[name]:>9.4f}" if name in pooled else ""
        lines.append(f"{name:<24}{mean[name]:>9.4f}{pooled_text}")
    return "\n".join(lines)


def write_report(run_dir: Path, result: Mapping[str, Any], records: Sequence[Mapping]) -> None:
    """``evaluation.json`` and ``evaluation_per_image.csv`` into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    with (run_dir / "evaluation_per_image.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def _finish(run_dir: Path, title: str, result: dict[str, Any], records: list) -> dict[str, Any]:
    write_report(run_dir, result, records)
    print(f"{title}: {result['count']} image(s) scored at their original size\n"
          f"{format_table(result)}")
    log.info("wrote %s and %s", run_dir / "evaluation.json", run_dir / "evaluation_per_image.csv")
    return result


# --------------------------------------------------------------------------- flexunet-eval


def eval_pairs(cfg: DictConfig) -> tuple[list[Pair], dict[str, Any]]:
    """The pairs of ``eval.split`` (``all``: every split) and a description of the data."""
    split = cfg.eval.split
    if split != "all" and split not in SPLITS:
        raise ConfigError(f"eval.split={split!r}: use one of {', '.join(SPLITS)} or all")
    source: DataSource = instantiate(cfg.data.source, _convert_="all")
    pairs = source.all_pairs() if split == "all" else source.pairs(split)
    if cfg.data.limit:
        pairs = pairs[: cfg.data.limit]
    if not pairs:
        raise DataError(f"{source.root}: the {split} split has no image/mask pairs to evaluate")
    described = {
        "source": OmegaConf.to_container(cfg.data.source, resolve=True),
        "split": split,
        "limit": cfg.data.limit,
    }
    return pairs, described


def evaluate(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Score a checkpoint on a split at the original mask resolution; write the report.

    ``ckpt_path`` may be a run directory: its ``data`` and ``mask`` config are used unless the
    command line (``overrides``) changes them; ``data.limit`` is always this job's (default
    null: every pair), since a training-time limit says nothing about what to evaluate.
    """
    configure_tensorflow(**cfg.runtime)
    ckpt, train_run = resolve_checkpoint(cfg.ckpt_path)
    limit = cfg.data.limit
    cfg = inherit_run_config(cfg, train_run, overrides, ("data", "mask"))
    cfg.data.limit = limit
    options = PredictOptions.from_config(cfg.eval)
    pairs, described = eval_pairs(cfg)
    rgb_map = parse_rgb_map(cfg.mask.rgb_map)
    model = load_model(ckpt)
    scorer = Scorer(check_classes(model, cfg.mask.num_classes, ckpt))
    if max(rgb_map.values()) >= scorer.num_classes:
        raise ConfigError(
            f"mask.rgb_map has class {max(rgb_map.values())} but the model predicts "
            f"{scorer.num_classes} classes; use the mask config the model was trained with"
        )
    log.info("evaluating %s on %d image(s) of split %s", ckpt, len(pairs), described["split"])
    for pair in progress(pairs, "evaluate"):
        image = load_image_rgb(pair.image)
        true = decode_mask(pair.mask, rgb_map, cfg.mask.tolerance)
        if image.shape[:2] != true.shape:
            raise DataError(
                f"{pair.mask}: mask is {true.shape[1]}x{true.shape[0]} but image {pair.image} "
                f"is {image.shape[1]}x{image.shape[0]}; they must have the same size"
            )
        probs = predict_probabilities(model, image, options)
        pred = to_class_map(probs, options.postprocess)
        ids = {"stem": pair.stem, "image": str(pair.image), "mask": str(pair.mask)}
        scorer.add(ids, pred, true, probs)
    result = scorer.result(
        checkpoint=str(ckpt),
        data=described,
        options=OmegaConf.to_container(cfg.eval, resolve=True),
        num_classes=scorer.num_classes,
    )
    return _finish(run_dir, f"evaluation of {ckpt}", result, scorer.records)


def evaluate_run(train_cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """``evaluate_after``: score a finished training run's ``checkpoints/best.keras`` with the
    run's own data and mask config into ``RUN_DIR/eval_SPLIT/`` (as ``flexunet-eval`` would;
    every pair of the split, whatever ``data.limit`` training used)."""
    cfg = OmegaConf.structured(EvaluateJobConfig)
    cfg.ckpt_path = str(run_dir / "checkpoints" / "best.keras")
    cfg.eval = OmegaConf.merge(cfg.eval, train_cfg.evaluate_after)
    for key in ("data", "mask", "runtime"):
        cfg[key] = OmegaConf.merge(cfg[key], OmegaConf.to_container(train_cfg[key], resolve=True))
    cfg.data.limit = None
    return evaluate(cfg, run_dir / f"eval_{cfg.eval.split}")


# --------------------------------------------------------------------------- flexunet-score


def _binary_mask(path: Path) -> np.ndarray:
    """The ISIC scorer's reading: palettes expanded, grey (first) channel > 128 is lesion."""
    return (load_mask_rgb(path)[..., 0] > ISIC_THRESHOLD).astype(np.uint8)


def score(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Score a folder of predicted masks against ground-truth masks, paired by file stem."""
    pred_dir, gt_dir = Path(cfg.pred_dir).expanduser(), Path(cfg.gt_dir).expanduser()
    if pred_dir.resolve() == gt_dir.resolve():  # a sanity check of the scorer itself
        log.warning("pred_dir and gt_dir are the same folder: each mask is scored against itself")
        pairs = [Pair(p.stem, p, p) for p in list_image_files(pred_dir, "mask")]
    else:
        pairing = pair_files(pred_dir, gt_dir, cfg.mask_suffixes)
        pairs = require_complete(pairing, pred_dir, gt_dir)
    if not pairs:
        raise DataError(f"{pred_dir}: no predicted masks found (.png, .jpg, .bmp, .tif)")
    scorer = Scorer(num_classes=2)
    for pair in progress(pairs, "score"):
        pred, true = _binary_mask(pair.image), _binary_mask(pair.mask)
        if pred.shape != true.shape:
            raise DataError(
                f"{pair.image}: prediction is {pred.shape[1]}x{pred.shape[0]} but the ground "
                f"truth {pair.mask} is {true.shape[1]}x{true.shape[0]}; predict at the "
                "original size"
            )
        ids = {"stem": pair.stem, "prediction": str(pair.image), "mask": str(pair.mask)}
        scorer.add(ids, pred, true, np.eye(2, dtype=np.float32)[pred])
    result = scorer.result(
        checkpoint=None,
        data={"pred_dir": str(pred_dir), "gt_dir": str(gt_dir)},
        num_classes=2,
    )
    return _finish(run_dir, f"score of {pred_dir} against {gt_dir}", result, scorer.records)
