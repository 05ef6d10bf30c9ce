"""``flexunet-eval``: score a checkpoint on a split at the original mask resolution.

    flexunet-eval ckpt_path=outputs/train/runs/RUN                 # test split, run's data
    flexunet-eval ckpt_path=RUN eval.split=valid eval.tta=flips eval.postprocess=largest_component
    flexunet-eval ckpt_path=model.keras data=folder data.source.root=data/ph2 eval.split=all

Writes ``evaluation.json`` and ``evaluation_per_image.csv`` into the run directory and returns
the mean lesion Dice (so sweeps over ``eval.*`` options can compare them). Exit status 1 with
the reason logged when the input or the options are wrong.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def run(cfg: DictConfig) -> float:
    from flexunet.evaluation.scorer import evaluate

    hydra_cfg = HydraConfig.get()
    with exit_on_user_error("flexunet-eval ckpt_path=outputs/train/runs/RUN"):
        result = evaluate(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))
    return result["mean"]["dice"]


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
