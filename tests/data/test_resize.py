"""The one resize rule: area averaging when shrinking, bilinear when enlarging."""

from __future__ import annotations

import cv2
import numpy as np

from flexunet.data.resize import interpolation, resize_image, resize_probabilities


def test_shrinking_averages_and_enlarging_interpolates() -> None:
    assert interpolation((600, 450), (128, 128)) == cv2.INTER_AREA
    assert interpolation((64, 64), (128, 128)) == cv2.INTER_LINEAR
    checker = np.indices((4, 4)).sum(axis=0) % 2 * 255  # 0/255 checkerboard
    image = np.repeat(checker[..., None], 3, axis=2).astype(np.uint8)
    small = resize_image(image, (2, 2))
    np.testing.assert_allclose(small, 127.5, atol=1)  # area: each 2x2 block's mean
    assert resize_image(image, (4, 4)) is image  # the same size: untouched


def test_probabilities_with_many_channels_resize_like_each_channel() -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((12, 16, 6)).astype(np.float32)
    out = resize_probabilities(probs, (40, 30))
    assert out.shape == (30, 40, 6)
    for channel in range(6):  # OpenCV takes at most 4 channels at a time: split and joined
        np.testing.assert_allclose(
            out[..., channel], resize_image(probs[..., channel], (40, 30)), atol=1e-6
        )
