"""``flexunet-score``: score predicted masks against ground truth, as the ISIC scorer does.

    flexunet-score pred_dir=outputs/infer/runs/RUN/predictions/masks gt_dir=data/ph2/masks

Pairs files by stem, binarises both at grey value > 128 (palettes expanded) and writes
``evaluation.json`` and ``evaluation_per_image.csv`` into the run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from flexunet.config import register_configs
from flexunet.errors import FlexUNetError
from flexunet.runtime import configure_environment

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="score")
def run(cfg: DictConfig) -> float:
    from flexunet.evaluation import score

    try:
        result = score(cfg, Path(HydraConfig.get().runtime.output_dir))
    except FlexUNetError as exc:
        log.error("%s", exc)  # Hydra would bury the message under a traceback
        raise SystemExit(1) from None
    except MissingMandatoryValue as exc:
        log.error("%s is required, e.g. `flexunet-score pred_dir=DIR gt_dir=DIR`", exc.full_key)
        raise SystemExit(1) from None
    return result["mean"]["dice"]


def main() -> None:
    configure_environment()
    register_configs()
    run()


if __name__ == "__main__":
    main()
