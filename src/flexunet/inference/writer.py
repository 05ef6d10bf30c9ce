"""``flexunet-infer``: predict a folder of images into masks at their original size.

Output layout (``infer.output_dir``, by default ``RUN/predictions``)::

    masks/STEM.png          palette PNG: class index per pixel, palette = the rgb_map colours
    overlays/STEM.png       the image with the lesion contour drawn on it (infer.overlay)
    probabilities/STEM.png  8-bit foreground probability, 255 = 1.0 (infer.probabilities)

``masks/`` can be scored directly: ``flexunet-score pred_dir=OUT/masks gt_dir=...``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from PIL import Image
from scipy import ndimage

from flexunet.data.masks import Color, parse_rgb_map
from flexunet.data.pairing import list_image_files
from flexunet.data.validate import load_image_rgb
from flexunet.errors import ConfigError, DataError
from flexunet.inference.predictor import (
    PredictOptions,
    check_classes,
    inherit_run_config,
    load_model,
    predict_probabilities,
    progress,
    resolve_checkpoint,
    to_class_map,
)
from flexunet.inference.render import class_colors
from flexunet.training.runtime import configure_tensorflow

log = logging.getLogger(__name__)

#: Contour colour of the lesion (class 1) on overlays; further classes use class_colors.
LESION_CONTOUR = (0, 255, 0)


def mask_palette(rgb_map: Mapping[Color, int], num_classes: int) -> list[int]:
    """Flat PNG palette: entry ``c`` is the (first) rgb_map colour of class ``c``."""
    colors = class_colors(num_classes).tolist()
    for color, cls in reversed(list(rgb_map.items())):  # the first colour of a class wins
        if cls < num_classes:
            colors[cls] = list(color)
    return [v for color in colors for v in color]


def save_mask(class_map: np.ndarray, palette: Sequence[int], path: Path) -> None:
    """Save a class-index map as a palette PNG (lossless, opens in colour in any viewer)."""
    img = Image.frombytes("P", class_map.shape[::-1], class_map.astype(np.uint8).tobytes())
    img.putpalette(list(palette))
    img.save(path)


def contour_overlay(image: np.ndarray, class_map: np.ndarray, num_classes: int) -> np.ndarray:
    """The image with the border of each foreground class drawn on it (about 0.5% of its size)."""
    out = image.copy()
    thickness = max(1, round(min(class_map.shape) / 200))
    colors = class_colors(num_classes)
    for cls in range(1, num_classes):
        region = class_map == cls
        edge = region & ~ndimage.binary_erosion(region, border_value=1)
        if thickness > 1:
            edge = ndimage.binary_dilation(edge, iterations=thickness - 1)
        out[edge] = LESION_CONTOUR if cls == 1 else colors[cls]
    return out


def _prepare_output(output_dir: Path, overwrite: bool) -> None:
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"{output_dir}: output directory is not empty; refusing to write over it. Choose "
            "another infer.output_dir, or set infer.overwrite=true to replace files of the "
            "same name (nothing else is deleted)"
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"{output_dir}: infer.output_dir is a file, not a folder")


def _list_images(images_dir: Path) -> list[Path]:
    images = list_image_files(images_dir, "image")
    if not images:
        raise DataError(f"{images_dir}: no images (.jpg, .jpeg, .png, .bmp, .tif) in this folder")
    stems: dict[str, Path] = {}
    for path in images:
        if path.stem in stems:
            raise DataError(
                f"two images share the stem {path.stem!r}: {stems[path.stem]} and {path}; "
                "their masks would have the same name, keep one of them"
            )
        stems[path.stem] = path
    return images


def infer(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Predict every image of ``infer.images_dir``; returns the output folder and count.

    ``ckpt_path`` may be a run directory: its ``mask`` config (the rgb_map colours of the
    written masks) is used unless the command line changes it.
    """
    configure_tensorflow(**cfg.runtime)
    ckpt, train_run = resolve_checkpoint(cfg.ckpt_path)
    cfg = inherit_run_config(cfg, train_run, overrides, ("mask",))
    options = PredictOptions.from_config(cfg.infer)
    images = _list_images(Path(cfg.infer.images_dir).expanduser())
    output_dir = Path(cfg.infer.output_dir).expanduser()
    _prepare_output(output_dir, cfg.infer.overwrite)
    model = load_model(ckpt)
    num_classes = check_classes(model, cfg.mask.num_classes, ckpt)
    palette = mask_palette(parse_rgb_map(cfg.mask.rgb_map), num_classes)
    folders = {"masks": True, "overlays": cfg.infer.overlay,
               "probabilities": cfg.infer.probabilities}
    for name, wanted in folders.items():
        if wanted:
            (output_dir / name).mkdir(parents=True, exist_ok=True)
    log.info("predicting %d image(s) with %s into %s", len(images), ckpt, output_dir)
    for path in progress(images, "infer"):
        image = load_image_rgb(path)
        probs = predict_probabilities(model, image, options)
        class_map = to_class_map(probs, options.postprocess)
        save_mask(class_map, palette, output_dir / "masks" / f"{path.stem}.png")
        if cfg.infer.overlay:
            overlay = contour_overlay(image, class_map, num_classes)
            Image.fromarray(overlay).save(output_dir / "overlays" / f"{path.stem}.png")
        if cfg.infer.probabilities:
            foreground = np.rint((1.0 - probs[..., 0]) * 255).clip(0, 255).astype(np.uint8)
            Image.fromarray(foreground).save(output_dir / "probabilities" / f"{path.stem}.png")
    log.info("wrote %d mask(s) to %s", len(images), output_dir / "masks")
    return {"output_dir": str(output_dir), "count": len(images)}
