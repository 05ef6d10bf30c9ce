"""Writing predictions: palette masks, contour overlays and probability maps.

Output layout of ``flexunet-infer`` (``infer.output_dir``, by default ``RUN/predictions``)::

    masks/STEM.png          palette PNG: class index per pixel, palette = the rgb_map colours
    overlays/STEM.png       the image with the lesion contour drawn on it (infer.overlay)
    probabilities/STEM.png  8-bit foreground probability, 255 = 1.0 (infer.probabilities)
    infer_errors.csv        the images that could not be read: path, error

``masks/`` can be scored directly: ``flexunet-score pred_dir=OUT/masks gt_dir=...``. An
image's mask is written last and atomically, so an existing mask means that image is done
(what ``infer.resume=true`` relies on).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from flexunet.data.masks import Color
from flexunet.errors import ConfigError
from flexunet.inference.predictor import Prediction
from flexunet.inference.render import class_colors
from flexunet.runs.records import atomic_open

#: Contour colour of the lesion (class 1) on overlays; further classes use class_colors.
LESION_CONTOUR = (0, 255, 0)
#: The images that could not be read, in ``infer.output_dir``.
ERRORS_CSV = "infer_errors.csv"


def mask_palette(rgb_map: Mapping[Color, int], num_classes: int) -> list[int]:
    """Flat PNG palette: entry ``c`` is the (first) rgb_map colour of class ``c``."""
    colors = class_colors(num_classes).tolist()
    for color, cls in reversed(list(rgb_map.items())):  # the first colour of a class wins
        if cls < num_classes:
            colors[cls] = list(color)
    return [v for color in colors for v in color]


def save_mask(class_map: np.ndarray, palette: Sequence[int], path: Path) -> None:
    """Save a class-index map as a palette PNG (lossless, opens in colour in any viewer);
    atomically: ``path`` is either absent or complete, even if the process is killed."""
    img = Image.frombytes("P", class_map.shape[::-1], class_map.astype(np.uint8).tobytes())
    img.putpalette(list(palette))
    partial = path.with_name(f".{path.name}.partial")
    img.save(partial, format="PNG")
    os.replace(partial, path)


def contour(region: np.ndarray, thickness: int = 1) -> np.ndarray:
    """The border pixels of a boolean ``region`` (H, W), ``thickness`` pixels wide."""
    edge = region & ~ndimage.binary_erosion(region, border_value=1)
    if thickness > 1:
        edge = ndimage.binary_dilation(edge, iterations=thickness - 1)
    return edge


def contour_overlay(image: np.ndarray, class_map: np.ndarray, num_classes: int) -> np.ndarray:
    """The image with the border of each foreground class drawn on it (about 0.5% of its size)."""
    out = image.copy()
    thickness = max(1, round(min(class_map.shape) / 200))
    colors = class_colors(num_classes)
    for cls in range(1, num_classes):
        out[contour(class_map == cls, thickness)] = LESION_CONTOUR if cls == 1 else colors[cls]
    return out


def prepare_output(
    output_dir: Path, overwrite: bool, resume: bool = False, node: str = "infer"
) -> None:
    """Refuse a non-empty ``output_dir`` unless ``overwrite`` or ``resume`` (not both), and a
    file in its place; ``node`` names the config node of the options in the message (infer,
    export: only infer can resume)."""
    if overwrite and resume:
        raise ConfigError(
            f"{node}.overwrite=true and {node}.resume=true: choose one (resume keeps the masks "
            "already written and predicts the rest; overwrite predicts every image again)"
        )
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (overwrite or resume):
        how = f"set {node}.overwrite=true"
        if node == "infer":
            how = (
                "set infer.resume=true to continue an interrupted run (images with a mask are "
                "skipped), or infer.overwrite=true"
            )
        raise ConfigError(
            f"{output_dir}: output directory is not empty; refusing to write over it. Choose "
            f"another {node}.output_dir, {how} to replace files of the same name (nothing "
            "else is deleted)"
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"{output_dir}: {node}.output_dir is a file, not a folder")


def mask_file(output_dir: Path, image: Path) -> Path:
    """Where the mask of ``image`` goes (its existence means the image is done)."""
    return output_dir / "masks" / f"{image.stem}.png"


def write_errors(output_dir: Path, errors: Sequence[tuple[Path, str]]) -> None:
    """``output_dir/infer_errors.csv``: one row (path, error) per image that was skipped."""
    with atomic_open(output_dir / ERRORS_CSV, newline="") as f:
        out = csv.writer(f)
        out.writerow(["path", "error"])
        out.writerows([str(image), error] for image, error in errors)


class PredictionWriter:
    """Writes each prediction into ``output_dir``: ``masks/``, and optionally ``overlays/``
    and ``probabilities/`` (see the module doc)."""

    def __init__(
        self, output_dir: Path, palette: Sequence[int], num_classes: int,
        overlay: bool = False, probabilities: bool = False,
    ) -> None:
        self.output_dir = output_dir
        self.palette = list(palette)
        self.num_classes = num_classes
        self.overlay = overlay
        self.probabilities = probabilities
        folders = {"masks": True, "overlays": overlay, "probabilities": probabilities}
        for name, wanted in folders.items():
            if wanted:
                (output_dir / name).mkdir(parents=True, exist_ok=True)

    def write(self, prediction: Prediction) -> None:
        """The optional files first, the mask last (see the module doc)."""
        stem = prediction.path.stem
        if self.overlay:
            overlay = contour_overlay(prediction.image, prediction.class_map, self.num_classes)
            Image.fromarray(overlay).save(self.output_dir / "overlays" / f"{stem}.png")
        if self.probabilities:
            foreground = 1.0 - prediction.probs[..., 0]
            pixels = np.rint(foreground * 255).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(self.output_dir / "probabilities" / f"{stem}.png")
        save_mask(prediction.class_map, self.palette, mask_file(self.output_dir, prediction.path))
