"""``flexunet-score``: score predicted masks against ground truth, as the ISIC scorer does.

    flexunet-score pred_dir=outputs/infer/runs/RUN/predictions/masks gt_dir=data/ph2/masks

Pairs files by stem, binarises both at grey value > 128 (palettes expanded) and writes
``evaluation.json`` and ``evaluation_per_image.csv`` into the run directory.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="score")
def run(cfg: DictConfig) -> float:
    from flexunet.evaluation.scorer import score

    with exit_on_user_error("flexunet-score pred_dir=DIR gt_dir=DIR"):
        result = score(cfg, Path(HydraConfig.get().runtime.output_dir))
    return result["mean"]["dice"]


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
