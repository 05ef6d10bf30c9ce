"""``flexunet-infer``: predict a folder of images into masks at their original size.

    flexunet-infer ckpt_path=outputs/train/runs/RUN infer.images_dir=data/ph2/images
    flexunet-infer ckpt_path=RUN infer.images_dir=DIR infer.overlay=true infer.tta=flips \
        infer.postprocess=largest_component infer.output_dir=DIR/predictions

Exit status 1 with the reason logged when the input or the options are wrong (for example a
non-empty output directory without ``infer.overwrite=true``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="infer")
def run(cfg: DictConfig) -> None:
    from flexunet.inference.writer import infer

    hydra_cfg = HydraConfig.get()
    with exit_on_user_error("flexunet-infer ckpt_path=RUN infer.images_dir=DIR"):
        infer(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
