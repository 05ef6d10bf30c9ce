"""Image grids and overlays shared by callbacks, inference and figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Class 0 black, lesion white, then distinct colours for multi-class masks.
_BASE_COLORS = [
    (0, 0, 0), (255, 255, 255), (230, 25, 75), (60, 180, 75), (0, 130, 200),
    (255, 225, 25), (145, 30, 180), (70, 240, 240), (245, 130, 48), (128, 128, 128),
]


def class_colors(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 display colours."""
    colors = [_BASE_COLORS[i % len(_BASE_COLORS)] for i in range(num_classes)]
    return np.asarray(colors, dtype=np.uint8)


def image_grid(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Cells (uint8 RGB, equal height within a row, equal row widths) joined by grey gaps."""
    joined = []
    for cells in rows:
        spacer = np.full((cells[0].shape[0], gap, 3), 128, np.uint8)
        parts = [part for cell in cells for part in (spacer, cell)][1:]
        joined.append(np.concatenate(parts, axis=1))
        joined.append(np.full((gap, joined[-1].shape[1], 3), 128, np.uint8))
    return np.concatenate(joined[:-1], axis=0)


def prediction_grid(
    images: np.ndarray, masks: np.ndarray, preds: np.ndarray, colors: np.ndarray, gap: int = 2
) -> np.ndarray:
    """Rows of [input | ground truth | prediction] as one uint8 RGB image."""
    rows = [
        [np.clip(image, 0, 255).astype(np.uint8), colors[mask], colors[pred]]
        for image, mask, pred in zip(images, masks, preds, strict=True)
    ]
    return image_grid(rows, gap)
