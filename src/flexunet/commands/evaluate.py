"""``flexunet-eval``: score a checkpoint on a split at the original mask resolution.

    flexunet-eval ckpt_path=outputs/train/runs/RUN                 # test split, run's data
    flexunet-eval ckpt_path=RUN eval.split=valid eval.tta=flips eval.postprocess=largest_component
    flexunet-eval ckpt_path=model.keras data=folder data.source.root=data/ph2 eval.split=all

``ckpt_path`` may also be a sweep directory (e.g. the folds of ``-m data.source.fold=0,1,2``)
or a list of runs (``'ckpt_path=[RUN1,RUN2]'``): an ensemble, the mean of their probabilities.

Writes ``evaluation.json`` (with ``members``, the checkpoints used, and per source of a
mixture), ``evaluation_per_image.csv``, ``worst.csv`` (the ``eval.report_worst`` lowest-Dice
images of each source), ``worst.png`` (the 8 worst: input, truth, prediction, overlay) and
``report.html`` (metrics, per-source tables, a histogram of the per-image Dice, the worst
images) into the run directory and returns the mean lesion Dice (so sweeps over ``eval.*``
options can compare them). Exit status 1 with the reason logged when the input or the options
are wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch, load_predictor
from flexunet.config import EvaluateJobConfig

log = logging.getLogger(__name__)

#: worst.png shows this many images with the lowest lesion Dice.
WORST_FIGURE_IMAGES = 8


def evaluate(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Score a checkpoint, or an ensemble, on ``eval.split``; write the report into ``run_dir``.

    ``ckpt_path`` may be a run directory: its ``data`` and ``mask`` config are used unless the
    command line (``overrides``) changes them, and so are the prediction options it recorded
    (``evaluate_after``); ``data.limit`` is always this job's (default null: every pair),
    since a training-time limit says nothing about what to evaluate. A sweep directory or a
    list of runs is an ensemble (the mean of the members' probabilities); the first run lends
    its config. With a mixture (``data=mixture``) every source is also scored on its own.
    """
    from hydra.utils import instantiate

    from flexunet.data.masks import decode_mask, parse_rgb_map
    from flexunet.data.sources import split_pairs
    from flexunet.errors import ConfigError, DataError
    from flexunet.evaluation.report import WorstImages, worst_figure, write_html_report
    from flexunet.evaluation.scorer import Scorer, finish, worst_rows, write_worst_csv
    from flexunet.inference.predictor import predict_images

    limit = cfg.data.limit
    cfg, predictor = load_predictor(cfg, "eval", overrides, ("data", "mask"))
    source = instantiate(cfg.data.source, _convert_="all")
    pairs = split_pairs(source, cfg.eval.split, limit, option="eval.split")
    rgb_map = parse_rgb_map(cfg.mask.rgb_map)
    scorer = Scorer(predictor.num_classes)
    if max(rgb_map.values()) >= scorer.num_classes:
        raise ConfigError(
            f"mask.rgb_map has class {max(rgb_map.values())} but the model predicts "
            f"{scorer.num_classes} classes; use the mask config the model was trained with"
        )
    per_source: dict[str, Scorer] = {}
    worst = WorstImages(max(cfg.eval.report_worst, WORST_FIGURE_IMAGES))
    predictions = predict_images(
        predictor, [p.image for p in pairs], "evaluate", max_pixels=cfg.data.max_pixels
    )
    for pair, pred in zip(pairs, predictions, strict=True):
        true = decode_mask(
            pair.mask, rgb_map, cfg.mask.tolerance, cfg.data.max_pixels, cfg.mask.threshold
        )
        if pred.image.shape[:2] != true.shape:
            raise DataError(
                f"{pair.mask}: mask is {true.shape[1]}x{true.shape[0]} but image {pair.image} "
                f"is {pred.image.shape[1]}x{pred.image.shape[0]}; they must have the same size"
            )
        ids = {"stem": pair.stem, "image": str(pair.image), "mask": str(pair.mask)}
        name = pair.stem
        if pair.source is not None:
            ids = {"source": pair.source, **ids}
            name = f"{pair.source}: {pair.stem}"
            per_source.setdefault(pair.source, Scorer(scorer.num_classes)).add(
                ids, pred.class_map, true, pred.probs
            )
        scorer.add(ids, pred.class_map, true, pred.probs)
        worst.add(name, scorer.records[-1]["dice"], pred.image, true, pred.class_map)
    described = {
        "source": OmegaConf.to_container(cfg.data.source, resolve=True),
        "split": cfg.eval.split,
        "limit": limit,
    }
    checkpoints = [str(c) for c in predictor.checkpoints]
    result = scorer.result(
        checkpoint=checkpoints[0] if len(checkpoints) == 1 else None,
        members=checkpoints,
        data=described,
        options=OmegaConf.to_container(cfg.eval, resolve=True),
        num_classes=scorer.num_classes,
        per_source={name: s.result() for name, s in sorted(per_source.items())},
        worst=worst_rows(scorer.records, cfg.eval.report_worst),
    )
    title = f"evaluation of {predictor.describe()}"
    finish(run_dir, title, result, scorer.records)
    write_worst_csv(run_dir / "worst.csv", result["worst"])
    ranked = worst.worst_first()
    figure = worst_figure(ranked[:WORST_FIGURE_IMAGES], scorer.num_classes, run_dir / "worst.png")
    dice = [record["dice"] for record in scorer.records]
    report = write_html_report(
        run_dir / "report.html", title, result, dice, ranked[: cfg.eval.report_worst]
    )
    log.info("wrote %s, %s and %s", report, run_dir / "worst.csv", figure)
    return result


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


def evaluate_ensemble(sweep_dir: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """Score the runs of a sweep (e.g. the folds of ``data.source.fold=0,1,2``) as one
    ensemble with the ``evaluate_after`` ``options`` into ``SWEEP_DIR/eval_SPLIT/``; data and
    mask config from the first run, as ``flexunet-eval ckpt_path=SWEEP_DIR`` would."""
    cfg = OmegaConf.structured(EvaluateJobConfig)
    cfg.ckpt_path = str(sweep_dir.resolve())
    cfg.eval = OmegaConf.merge(cfg.eval, options)
    return evaluate(cfg, sweep_dir / f"eval_{cfg.eval.split}")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def run(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    with exit_on_user_error(cfg, "flexunet-eval ckpt_path=outputs/train/runs/RUN"):
        result = evaluate(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))
    return result["mean"]["dice"]


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
