"""``flexunet-infer``: predict images into masks at their original size.

    flexunet-infer ckpt_path=outputs/train/runs/RUN infer.input=data/ph2/images
    flexunet-infer ckpt_path=RUN infer.input='data/ph2/images/IMD00*.bmp' infer.overlay=true
    flexunet-infer ckpt_path=RUN infer.input=photo.jpg infer.tta=flips \
        infer.postprocess=largest_component infer.output_dir=DIR/predictions
    flexunet-infer ckpt_path=RUN infer.input=DIR infer.output_dir=OUT infer.resume=true

``infer.input`` is an image file, a folder (its images) or a glob pattern; ``infer.images_dir``
is its former name and still works. An image that cannot be read is listed with its reason in
``OUT/infer_errors.csv`` and the others are predicted (``infer.on_error=skip``, the default);
the command then ends with exit status 1 and one line saying how many were skipped.
``infer.on_error=stop`` stops at the first one. Exit status 1 with the reason logged when the
input or the options are wrong (for example a non-empty output directory without
``infer.resume=true`` or ``infer.overwrite=true``).
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
from flexunet.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ON_ERROR = ("skip", "stop")
EXAMPLE = "flexunet-infer ckpt_path=RUN infer.input=DIR"


def input_spec(node: DictConfig) -> str:
    """``infer.input``, or its former name ``infer.images_dir``."""
    given = {k: node[k] for k in ("input", "images_dir") if node[k] is not None}
    if len(set(given.values())) > 1:
        raise ConfigError(
            "infer.images_dir is the former name of infer.input: give infer.input only"
        )
    if not given:
        raise ConfigError(
            f"infer.input is required (an image file, a folder or a glob pattern), e.g. "
            f"`{EXAMPLE}`"
        )
    return str(next(iter(given.values())))


def _reason(error: DataError, path: Path) -> str:
    """The error message without the leading path (the CSV has its own column for it)."""
    message = str(error)
    return message.removeprefix(f"{path}: ")


def infer(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Predict every image of ``infer.input``; returns the output folder and counts.

    ``ckpt_path`` may be a run directory: its ``mask`` config (the rgb_map colours of the
    written masks) is used unless the command line changes it. Images that cannot be read
    are skipped and listed in ``infer_errors.csv`` (``infer.on_error=skip``); then a
    :class:`DataError` saying how many is raised at the end, after the others are written.
    """
    from flexunet.data.masks import parse_rgb_map
    from flexunet.inference.inputs import find_images
    from flexunet.inference.predictor import predict_images
    from flexunet.inference.writer import (
        ERRORS_CSV,
        PredictionWriter,
        mask_file,
        mask_palette,
        prepare_output,
        write_errors,
    )

    options = cfg.infer
    if options.on_error not in ON_ERROR:
        raise ConfigError(f"infer.on_error={options.on_error!r}: use one of {', '.join(ON_ERROR)}")
    images = find_images(input_spec(options))
    output_dir = Path(options.output_dir).expanduser()
    prepare_output(output_dir, options.overwrite, options.resume)
    todo = images
    if options.resume:
        todo = [path for path in images if not mask_file(output_dir, path).exists()]
        log.info("resuming: %d of %d image(s) already have a mask", len(images) - len(todo),
                 len(images))
    cfg, predictor = load_predictor(cfg, "infer", overrides, ("mask",))
    palette = mask_palette(parse_rgb_map(cfg.mask.rgb_map), predictor.num_classes)
    writer = PredictionWriter(
        output_dir, palette, predictor.num_classes,
        overlay=options.overlay, probabilities=options.probabilities,
    )
    errors: list[tuple[Path, str]] = []

    def skip(path: Path, error: DataError) -> None:
        log.warning("skipped: %s", error)
        errors.append((path, _reason(error, path)))

    log.info("predicting %d image(s) into %s", len(todo), output_dir)
    predictions = predict_images(
        predictor, todo, "infer", max_pixels=options.max_pixels,
        on_error=skip if options.on_error == "skip" else None,
    )
    for prediction in predictions:
        writer.write(prediction)
    written = len(todo) - len(errors)
    log.info("wrote %d mask(s) to %s", written, output_dir / "masks")
    if errors or (output_dir / ERRORS_CSV).exists():  # a resumed run replaces the old list
        write_errors(output_dir, errors)
    if errors:
        raise DataError(
            f"{len(errors)} of {len(images)} images skipped; see {output_dir / ERRORS_CSV}"
        )
    return {"output_dir": str(output_dir), "count": written, "resumed": len(images) - len(todo)}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="infer")
def run(cfg: DictConfig) -> None:
    with exit_on_user_error(cfg, EXAMPLE):
        infer(cfg, list(HydraConfig.get().overrides.task))


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
