"""``flexunet-figure``: input / ground truth / prediction / overlay for a few images of a split.

Prediction goes through :mod:`flexunet.inference.predictor` (the same TTA and post-processing as
``flexunet-eval``), so the figure shows what the evaluation scores; each prediction cell is
labelled with that image's lesion Dice at the original size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image, ImageDraw

from flexunet.data.masks import decode_mask, parse_rgb_map
from flexunet.data.pairing import Pair
from flexunet.data.sources import SPLITS, DataSource
from flexunet.data.validate import load_image_rgb
from flexunet.errors import ConfigError, DataError
from flexunet.evaluation.metrics import image_metrics
from flexunet.inference.predictor import (
    PredictOptions,
    check_classes,
    inherit_run_config,
    load_model,
    predict_probabilities,
    resolve_checkpoint,
    to_class_map,
)
from flexunet.inference.render import class_colors, image_grid
from flexunet.inference.writer import contour_overlay
from flexunet.training.runtime import configure_tensorflow

log = logging.getLogger(__name__)

COLUMNS = ("input", "ground truth", "prediction", "overlay")
HEADER_PX = 14


def figure_pairs(cfg: DictConfig) -> list[Pair]:
    """The pairs to show: ``figure.stems`` of the split, else its first ``figure.num_images``."""
    split = cfg.figure.split
    if split != "all" and split not in SPLITS:
        raise ConfigError(f"figure.split={split!r}: use one of {', '.join(SPLITS)} or all")
    source: DataSource = instantiate(cfg.data.source, _convert_="all")
    pairs = source.all_pairs() if split == "all" else source.pairs(split)
    stems = list(cfg.figure.stems)
    if stems:
        by_stem = {p.stem: p for p in pairs}
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise DataError(f"figure.stems: {', '.join(missing)} not in the {split} split")
        return [by_stem[s] for s in stems]
    if not pairs:
        raise DataError(f"{source.root}: the {split} split has no image/mask pairs")
    return pairs[: cfg.figure.num_images]


def _cell(array: np.ndarray, width: int, nearest: bool = False) -> np.ndarray:
    height = max(1, round(array.shape[0] * width / array.shape[1]))
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(array, (width, height), interpolation=interpolation)


def label(
    grid: np.ndarray, titles: Sequence[tuple[int, str]], notes: Sequence[tuple[int, int, str]]
) -> Image.Image:
    """The grid under a white header with ``(x, title)`` column titles, and ``(x, y, note)``
    notes in white on black drawn on the grid (``y`` in grid pixels)."""
    canvas = np.full((grid.shape[0] + HEADER_PX, grid.shape[1], 3), 255, np.uint8)
    canvas[HEADER_PX:] = grid
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for x, title in titles:
        draw.text((x, 1), title, fill=(0, 0, 0))
    for x, y, note in notes:
        draw.rectangle(draw.textbbox((x, y + HEADER_PX), note), fill=(0, 0, 0))
        draw.text((x, y + HEADER_PX), note, fill=(255, 255, 255))
    return image


def make_figure(cfg: DictConfig, overrides: Sequence[str] = ()) -> Path:
    """Predict the chosen pairs and save the labelled grid to ``figure.output``.

    ``ckpt_path`` may be a run directory: its ``data`` and ``mask`` config are used unless
    the command line changes them (as in ``flexunet-eval``).
    """
    configure_tensorflow(**cfg.runtime)
    ckpt, train_run = resolve_checkpoint(cfg.ckpt_path)
    cfg = inherit_run_config(cfg, train_run, overrides, ("data", "mask"))
    options = PredictOptions.from_config(cfg.figure)
    pairs = figure_pairs(cfg)
    rgb_map = parse_rgb_map(cfg.mask.rgb_map)
    model = load_model(ckpt)
    num_classes = check_classes(model, cfg.mask.num_classes, ckpt)
    colors = class_colors(max(2, num_classes))
    width, gap = cfg.figure.cell_width, 2
    titles = [(i * (width + gap) + 2, name) for i, name in enumerate(COLUMNS)]
    rows, notes, top = [], [], 0
    for pair in pairs:
        image = load_image_rgb(pair.image)
        true = decode_mask(pair.mask, rgb_map, cfg.mask.tolerance)
        pred = to_class_map(predict_probabilities(model, image, options), options.postprocess)
        dice = image_metrics(pred, true, num_classes)["dice"]
        small = _cell(image, width)
        small_pred = _cell(pred.astype(np.uint8), width, nearest=True)
        rows.append([
            small, _cell(colors[true], width, nearest=True), colors[small_pred],
            contour_overlay(small, small_pred, num_classes),  # a 1-pixel contour at cell size
        ])
        notes.append((2 * (width + gap) + 2, top + 2, f"{pair.stem}  Dice {dice:.3f}"))
        top += rows[-1][0].shape[0] + gap
    picture = label(image_grid(rows, gap), titles, notes)
    if cfg.figure.colors:
        picture = picture.quantize(colors=cfg.figure.colors)
    output = Path(cfg.figure.output).expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    picture.save(output, optimize=True)
    log.info("wrote %s (%d image(s) of %s, %s)", output, len(pairs), ckpt, options)
    return output
