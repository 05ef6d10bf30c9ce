"""``flexunet-train``: compose the config, train one job, return the monitored value.

    flexunet-train                                   # CPU model on the synthetic default
    flexunet-train model.base_filters=32 train.epochs=5
    flexunet-train -m train.optimizer.learning_rate=1e-3,3e-4     # SWEEP_DIR/summary.csv
    flexunet-train -m hparams_search=optuna                       # Optuna TPE search
    flexunet-train experiment=skin_cancer_512                     # the published run
    flexunet-train resume=outputs/train/runs/DATE                 # continue a killed run
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, launch
from flexunet.errors import ConfigError
from flexunet.runs.records import resume_argv


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def run(cfg: DictConfig) -> float:
    from flexunet.runs.sweeps import run_job

    return run_job(cfg)


def main() -> None:
    try:
        sys.argv = resume_argv(sys.argv)
    except ConfigError as err:
        sys.exit(f"flexunet-train: {err}")
    launch(run)


if __name__ == "__main__":
    main()
