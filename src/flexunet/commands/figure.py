"""``flexunet-figure``: a results figure from a checkpoint.

    flexunet-figure ckpt_path=outputs/train/runs/RUN                    # 4 test images
    flexunet-figure ckpt_path=RUN figure.tta=flips figure.postprocess=largest_component \
        figure.num_images=3 figure.output=docs/figures/ph2_test.png

Rows: images of ``figure.split``; columns: input, ground truth, prediction (with its lesion
Dice), the prediction's contour on the input. Exit status 1 with the reason logged when the
input or the options are wrong.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="figure")
def run(cfg: DictConfig) -> None:
    from flexunet.evaluation.figure import make_figure

    with exit_on_user_error("flexunet-figure ckpt_path=outputs/train/runs/RUN"):
        make_figure(cfg, list(HydraConfig.get().overrides.task))


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
