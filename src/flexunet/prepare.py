"""``flexunet-prepare``: check an images/ + masks/ folder and split it into train/valid/test.

    flexunet-prepare source=data/ph2 check_only=true
    flexunet-prepare source=data/ph2 output=data/ph2_split
    flexunet-prepare source=data/ham10000_raw output=data/skin_cancer \
        metadata=data/HAM10000_metadata.csv

Relative paths are taken from the current directory. Exit status 0 on success, 1 when the
input or the options are wrong (the reason is logged). TensorFlow is not imported.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.config import register_configs
from flexunet.errors import FlexUNetError
from flexunet.runtime import configure_environment

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
def run(cfg: DictConfig) -> None:
    from flexunet.data.prepare import run_from_config

    try:
        run_from_config(cfg, Path(HydraConfig.get().runtime.cwd))
    except FlexUNetError as exc:
        # Hydra would bury the message under "Error executing job" and a traceback.
        log.error("%s", exc)
        raise SystemExit(1) from None


def main() -> None:
    configure_environment()
    register_configs()
    run()


if __name__ == "__main__":
    main()
