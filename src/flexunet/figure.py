"""``flexunet-figure`` (or ``python -m flexunet.figure``): a results figure from a checkpoint.

    flexunet-figure ckpt_path=outputs/train/runs/RUN                    # 4 test images
    flexunet-figure ckpt_path=RUN figure.tta=flips figure.postprocess=largest_component \
        figure.num_images=3 figure.output=docs/figures/ph2_test.png

Rows: images of ``figure.split``; columns: input, ground truth, prediction (with its lesion
Dice), the prediction's contour on the input. Exit status 1 with the reason logged when the
input or the options are wrong.
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="figure")
def run(cfg: DictConfig) -> None:
    from flexunet.figures import make_figure

    try:
        make_figure(cfg, list(HydraConfig.get().overrides.task))
    except FlexUNetError as exc:
        log.error("%s", exc)  # Hydra would bury the message under a traceback
        raise SystemExit(1) from None
    except MissingMandatoryValue as exc:
        log.error("%s is required, e.g. `flexunet-figure ckpt_path=outputs/train/runs/RUN`",
                  exc.full_key)
        raise SystemExit(1) from None


def main() -> None:
    configure_environment()
    register_configs()
    run()


if __name__ == "__main__":
    main()
