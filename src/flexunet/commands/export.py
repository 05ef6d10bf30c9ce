"""``flexunet-export``: a checkpoint as a SavedModel, ONNX or LiteRT model, checked against Keras.

    flexunet-export ckpt_path=outputs/train/runs/RUN                      # saved_model/
    flexunet-export ckpt_path=RUN export.format=onnx export.output_dir=deploy/onnx
    flexunet-export ckpt_path=model.keras export.format=litert export.images=data/ph2/images

Writes the artifact and ``model.json`` (input size, classes, preprocessing, the measured max
|difference| from the Keras model on a few real images) into ``export.output_dir``: the run
directory unless set. Exit status 1 with the reason logged when the artifact differs from the
Keras model by more than ``export.tolerance``, or the input or the options are wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch, load_checkpoint

log = logging.getLogger(__name__)


def check_images(cfg: DictConfig) -> list[Path]:
    """The images to compare on: the first ``export.num_images`` of ``export.images`` (a
    file, folder or glob, as ``infer.input``), else of ``export.split`` of the data config."""
    from hydra.utils import instantiate

    from flexunet.data.sources import split_pairs
    from flexunet.inference.inputs import find_images

    if cfg.export.images is not None:
        images = find_images(cfg.export.images)
    else:
        source = instantiate(cfg.data.source, _convert_="all")
        images = [p.image for p in split_pairs(source, cfg.export.split, option="export.split")]
    return images[: cfg.export.num_images]


def export(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Export ``ckpt_path`` as ``export.format`` and check it; returns ``model.json``'s dict.

    ``ckpt_path`` may be a run directory: its ``data`` and ``mask`` config are used unless the
    command line changes them. A non-empty ``export.output_dir`` is refused (unless
    ``export.overwrite``), except this job's own run directory.
    """
    from flexunet.inference.export import default_class_names, export_checked, export_format
    from flexunet.inference.predictor import check_classes, load_model
    from flexunet.inference.writer import prepare_output

    export_format(cfg.export.format)  # an unknown format or a missing converter: fail first
    output_dir = Path(cfg.export.output_dir).expanduser()
    if output_dir.resolve() != Path(cfg.paths.run_dir).resolve():
        prepare_output(output_dir, cfg.export.overwrite, node="export")
    cfg, ckpt = load_checkpoint(cfg, overrides, ("data", "mask"))
    model = load_model(ckpt)
    num_classes = check_classes(model, cfg.mask.num_classes, ckpt)
    images = check_images(cfg)
    log.info("exporting %s as %s into %s", ckpt, cfg.export.format, output_dir)
    return export_checked(
        model, cfg.export.format, output_dir, images,
        list(cfg.export.class_names) or default_class_names(num_classes),
        cfg.export.tolerance,
        {"checkpoint": str(ckpt), "mask_rgb_map": OmegaConf.to_container(cfg.mask.rgb_map)},
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def run(cfg: DictConfig) -> None:
    with exit_on_user_error(cfg, "flexunet-export ckpt_path=outputs/train/runs/RUN"):
        export(cfg, list(HydraConfig.get().overrides.task))


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
