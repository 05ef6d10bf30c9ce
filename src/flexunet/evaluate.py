"""``flexunet-eval``: score a checkpoint on a split at the original mask resolution.

    flexunet-eval ckpt_path=outputs/train/runs/RUN                 # test split, run's data
    flexunet-eval ckpt_path=RUN eval.split=valid eval.tta=flips eval.postprocess=largest_component
    flexunet-eval ckpt_path=model.keras data=folder data.source.root=data/ph2 eval.split=all

Writes ``evaluation.json`` and ``evaluation_per_image.csv`` into the run directory and returns
the mean lesion Dice (so sweeps over ``eval.*`` options can compare them). Exit status 1 with
the reason logged when the input or the options are wrong.
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def run(cfg: DictConfig) -> float:
    from flexunet.evaluation import evaluate

    hydra_cfg = HydraConfig.get()
    try:
        result = evaluate(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))
    except FlexUNetError as exc:
        log.error("%s", exc)  # Hydra would bury the message under a traceback
        raise SystemExit(1) from None
    except MissingMandatoryValue as exc:
        log.error("%s is required, e.g. `flexunet-eval ckpt_path=outputs/train/runs/RUN`",
                  exc.full_key)
        raise SystemExit(1) from None
    return result["mean"]["dice"]


def main() -> None:
    configure_environment()
    register_configs()
    run()


if __name__ == "__main__":
    main()
