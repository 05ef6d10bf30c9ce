"""``flexunet-infer``: predict a folder of images into masks at their original size.

    flexunet-infer ckpt_path=outputs/train/runs/RUN infer.images_dir=data/ph2/images
    flexunet-infer ckpt_path=RUN infer.images_dir=DIR infer.overlay=true infer.tta=flips \
        infer.postprocess=largest_component infer.output_dir=DIR/predictions

Exit status 1 with the reason logged when the input or the options are wrong (for example a
non-empty output directory without ``infer.overwrite=true``).
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


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="infer")
def run(cfg: DictConfig) -> None:
    from flexunet.inference import infer

    hydra_cfg = HydraConfig.get()
    try:
        infer(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))
    except FlexUNetError as exc:
        log.error("%s", exc)  # Hydra would bury the message under a traceback
        raise SystemExit(1) from None
    except MissingMandatoryValue as exc:
        log.error("%s is required, e.g. `flexunet-infer ckpt_path=RUN infer.images_dir=DIR`",
                  exc.full_key)
        raise SystemExit(1) from None


def main() -> None:
    configure_environment()
    register_configs()
    run()


if __name__ == "__main__":
    main()
