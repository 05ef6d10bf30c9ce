"""``flexunet-prepare``: check an images/ + masks/ folder and split it into train/valid/test.

    flexunet-prepare source=data/ph2 check_only=true
    flexunet-prepare source=data/ph2 output=data/ph2_split
    flexunet-prepare source=data/ham10000_raw output=data/skin_cancer \
        metadata=data/HAM10000_metadata.csv

Relative paths are taken from the current directory. Exit status 0 on success, 1 when the
input or the options are wrong (the reason is logged). TensorFlow is not imported.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
def run(cfg: DictConfig) -> None:
    from flexunet.data.organize import run_from_config

    with exit_on_user_error(cfg):
        run_from_config(cfg, Path(HydraConfig.get().runtime.cwd))


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
