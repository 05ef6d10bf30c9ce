"""The one resize rule of the project: area averaging when shrinking, bilinear otherwise.

Training resizes its inputs with it and prediction resizes images to the model input and the
model's probabilities back to the original size with it, so a model sees at prediction time
exactly what it saw in training. Class maps are never interpolated (NEAREST, where needed).
"""

from __future__ import annotations

import cv2
import numpy as np


def interpolation(src: tuple[int, int], dst: tuple[int, int]) -> int:
    """OpenCV flag for resizing (width, height) ``src`` to ``dst``: INTER_AREA when shrinking."""
    return cv2.INTER_AREA if src[0] > dst[0] else cv2.INTER_LINEAR


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (H, W, C<=4) image to ``size`` (width, height); unchanged when already that size."""
    src = (image.shape[1], image.shape[0])
    size = (int(size[0]), int(size[1]))
    if src == size:
        return image
    return cv2.resize(image, size, interpolation=interpolation(src, size))


def resize_probabilities(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) probabilities to ``size`` (width, height), any number of channels."""
    src = (probs.shape[1], probs.shape[0])
    if src == tuple(size):
        return probs
    # OpenCV resizes at most 4 channels at a time with INTER_AREA.
    parts = [
        resize_image(probs[..., i : i + 4], size).reshape(size[1], size[0], -1)
        for i in range(0, probs.shape[-1], 4)
    ]
    return np.concatenate(parts, axis=-1)
