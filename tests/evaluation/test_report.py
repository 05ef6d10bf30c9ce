"""report.html's parts: the worst images in a bounded heap, their two-colour contours.

The page itself is rendered in Chromium by tests/commands/test_evaluate.py."""

from __future__ import annotations

import numpy as np

from flexunet.evaluation.report import (
    PREDICTION_CONTOUR,
    TRUTH_CONTOUR,
    WorstImages,
    overlay_thumbnail,
)


def _disc(size: int, radius: int, dx: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size // 2) ** 2 + (xx - size // 2 - dx) ** 2 < radius**2).astype(np.uint8)


def test_only_the_worst_are_kept_worst_first() -> None:
    image = np.full((40, 60, 3), 200, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    worst = WorstImages(3, width=30)
    for stem, dice in [("a", 0.9), ("b", 0.2), ("c", 0.7), ("d", 0.1), ("e", 0.95), ("f", 0.2)]:
        worst.add(stem, dice, image, mask, mask)
    kept = worst.worst_first()
    assert [(w.stem, w.dice) for w in kept] == [("d", 0.1), ("b", 0.2), ("f", 0.2)]
    assert len(worst._heap) == 3  # never more than the count
    assert WorstImages(0).worst_first() == []


def test_thumbnail_draws_truth_and_prediction_contours_in_two_colours() -> None:
    from io import BytesIO

    from PIL import Image

    image = np.full((100, 100, 3), 128, np.uint8)
    png = overlay_thumbnail(image, _disc(100, 30, dx=-20), _disc(100, 30, dx=20), width=50)
    pixels = np.asarray(Image.open(BytesIO(png)))
    assert pixels.shape == (50, 50, 3)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)}
    assert {TRUTH_CONTOUR, PREDICTION_CONTOUR} <= colours
