"""``flexunet-infer``: predict a folder of images into masks at their original size.

    flexunet-infer ckpt_path=outputs/train/runs/RUN infer.images_dir=data/ph2/images
    flexunet-infer ckpt_path=RUN infer.images_dir=DIR infer.overlay=true infer.tta=flips \
        infer.postprocess=largest_component infer.output_dir=DIR/predictions

Exit status 1 with the reason logged when the input or the options are wrong (for example a
non-empty output directory without ``infer.overwrite=true``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch, load_predictor

log = logging.getLogger(__name__)


def infer(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Predict every image of ``infer.images_dir``; returns the output folder and count.

    ``ckpt_path`` may be a run directory: its ``mask`` config (the rgb_map colours of the
    written masks) is used unless the command line changes it.
    """
    from flexunet.data.masks import parse_rgb_map
    from flexunet.inference.predictor import predict_images
    from flexunet.inference.writer import (
        PredictionWriter,
        list_images,
        mask_palette,
        prepare_output,
    )

    images = list_images(Path(cfg.infer.images_dir).expanduser())
    output_dir = Path(cfg.infer.output_dir).expanduser()
    prepare_output(output_dir, cfg.infer.overwrite)
    cfg, predictor = load_predictor(cfg, "infer", overrides, ("mask",))
    palette = mask_palette(parse_rgb_map(cfg.mask.rgb_map), predictor.num_classes)
    writer = PredictionWriter(
        output_dir, palette, predictor.num_classes,
        overlay=cfg.infer.overlay, probabilities=cfg.infer.probabilities,
    )
    log.info("predicting %d image(s) into %s", len(images), output_dir)
    for prediction in predict_images(predictor, images, "infer"):
        writer.write(prediction)
    log.info("wrote %d mask(s) to %s", len(images), output_dir / "masks")
    return {"output_dir": str(output_dir), "count": len(images)}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="infer")
def run(cfg: DictConfig) -> None:
    with exit_on_user_error(cfg, "flexunet-infer ckpt_path=RUN infer.images_dir=DIR"):
        infer(cfg, list(HydraConfig.get().overrides.task))


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
