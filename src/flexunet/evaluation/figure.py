"""The results figure of ``flexunet-figure``: input / ground truth / prediction / overlay.

Its predictions come from the same loop and options as ``flexunet-eval``'s
(:func:`flexunet.inference.predictor.predict_images`), so the figure shows what the
evaluation scores; each prediction cell is labelled with that image's lesion Dice.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

from flexunet.data.resize import resize_image
from flexunet.evaluation.metrics import image_metrics
from flexunet.inference.predictor import Prediction
from flexunet.inference.render import class_colors, image_grid
from flexunet.inference.writer import contour_overlay

COLUMNS = ("input", "ground truth", "prediction", "overlay")
HEADER_PX = 14


def fit_width(array: np.ndarray, width: int, nearest: bool = False) -> np.ndarray:
    """``array`` scaled to ``width`` pixels, keeping its aspect ratio (class maps: NEAREST)."""
    height = max(1, round(array.shape[0] * width / array.shape[1]))
    if nearest:
        return cv2.resize(array, (width, height), interpolation=cv2.INTER_NEAREST)
    return resize_image(array, (width, height))


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


class FigureGrid:
    """Rows of input / ground truth / prediction / overlay cells, labelled with each image's
    lesion Dice at the original size (the figure shows what the evaluation scores)."""

    def __init__(self, num_classes: int, cell_width: int, gap: int = 2) -> None:
        self.num_classes = num_classes
        self.colors = class_colors(max(2, num_classes))
        self.width, self.gap = cell_width, gap
        self.rows: list[list[np.ndarray]] = []
        self.notes: list[tuple[int, int, str]] = []
        self.top = 0

    def add(self, name: str, prediction: Prediction, true: np.ndarray) -> None:
        """One row: ``prediction`` of an image and its ground-truth class map ``true``."""
        dice = image_metrics(prediction.class_map, true, self.num_classes)["dice"]
        self.add_row(name, prediction.image, true, prediction.class_map, dice)

    def add_row(
        self, name: str, image: np.ndarray, true: np.ndarray, pred: np.ndarray, dice: float,
        overlay: np.ndarray | None = None,
    ) -> None:
        """One row from an image, its true and predicted class maps (any common size, e.g.
        thumbnails) and the lesion ``dice`` scored at the original size; ``overlay`` replaces
        the last cell (default: the prediction's contour on the image)."""
        width = self.width
        small = fit_width(image, width)
        small_pred = fit_width(pred.astype(np.uint8), width, nearest=True)
        if overlay is None:
            overlay = contour_overlay(small, small_pred, self.num_classes)  # a 1-pixel contour
        self.rows.append([
            small, self.colors[fit_width(true.astype(np.uint8), width, nearest=True)],
            self.colors[small_pred], fit_width(overlay, width),
        ])
        self.notes.append((2 * (width + self.gap) + 2, self.top + 2, f"{name}  Dice {dice:.3f}"))
        self.top += self.rows[-1][0].shape[0] + self.gap

    def image(self) -> Image.Image:
        """The labelled grid."""
        titles = [(i * (self.width + self.gap) + 2, name) for i, name in enumerate(COLUMNS)]
        return label(image_grid(self.rows, self.gap), titles, self.notes)


class ComparisonGrid:
    """Models side by side: one column per image; a row of inputs, one of ground truths, then
    one row of predictions per model, each cell labelled with its lesion Dice."""

    def __init__(self, num_classes: int, cell_width: int, gap: int = 2) -> None:
        self.num_classes = num_classes
        self.colors = class_colors(max(2, num_classes))
        self.width, self.gap = cell_width, gap
        self.inputs: list[np.ndarray] = []
        self.truths: list[np.ndarray] = []
        self.truth_maps: list[np.ndarray] = []
        self.rows: list[tuple[str, list[np.ndarray], list[float]]] = []

    def add_images(self, images: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> None:
        """The columns: each image (RGB) and its ground-truth class map."""
        self.inputs = [fit_width(image, self.width) for image in images]
        self.truths = [fit_width(self.colors[t], self.width, nearest=True) for t in truths]
        self.truth_maps = list(truths)

    def add_model(self, name: str, predictions: Sequence[Prediction]) -> None:
        """One row: ``name``'s predictions of the images, in column order."""
        cells, scores = [], []
        for prediction, true in zip(predictions, self.truth_maps, strict=True):
            scores.append(image_metrics(prediction.class_map, true, self.num_classes)["dice"])
            small = fit_width(prediction.class_map.astype(np.uint8), self.width, nearest=True)
            cells.append(self.colors[small])
        self.rows.append((name, cells, scores))

    def image(self) -> Image.Image:
        """The labelled grid (row titles drawn on the first cell of each row)."""
        rows = [self.inputs, self.truths] + [cells for _, cells, _ in self.rows]
        notes, top = [], 0
        titles = ["input", "ground truth"] + [name for name, _, _ in self.rows]
        for r, cells in enumerate(rows):
            notes.append((2, top + 2, titles[r]))
            if r >= 2:
                for c, dice in enumerate(self.rows[r - 2][2]):
                    x = c * (self.width + self.gap) + 2
                    notes.append((x, top + cells[c].shape[0] - 14, f"Dice {dice:.3f}"))
            top += cells[0].shape[0] + self.gap
        return label(image_grid(rows, self.gap), [], notes)
