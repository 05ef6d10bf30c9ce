"""``flexunet-score``: score predicted masks against ground truth, as the ISIC scorer does.

    flexunet-score pred_dir=outputs/infer/runs/RUN/predictions/masks gt_dir=data/ph2/masks

Pairs files by stem, binarises both at grey value > 128 (palettes expanded) and writes
``evaluation.json`` and ``evaluation_per_image.csv`` into the run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch

log = logging.getLogger(__name__)


def score(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Score a folder of predicted masks against ground-truth masks, paired by file stem."""
    import numpy as np

    from flexunet.data.pairing import Pair, list_image_files, pair_files, require_complete
    from flexunet.errors import DataError
    from flexunet.evaluation.scorer import Scorer, finish, read_binary_mask
    from flexunet.progress import progress

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
        pred, true = read_binary_mask(pair.image), read_binary_mask(pair.mask)
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
    return finish(run_dir, f"score of {pred_dir} against {gt_dir}", result, scorer.records)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="score")
def run(cfg: DictConfig) -> float:
    with exit_on_user_error(cfg, "flexunet-score pred_dir=DIR gt_dir=DIR"):
        result = score(cfg, Path(HydraConfig.get().runtime.output_dir))
    return result["mean"]["dice"]


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
