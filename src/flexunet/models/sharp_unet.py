"""Sharp U-Net (Zunair & Hamza, 2021, "Sharp U-Net: Depthwise convolutional network for
biomedical image segmentation").

A U-Net whose skip connections pass the encoder features through a fixed, untrained
depthwise 3x3 sharpening (Laplacian) filter, ``[[-1,-1,-1],[-1,8,-1],[-1,-1,-1]]`` on every
channel, before they are concatenated with the upsampled decoder features: it brings the
encoder's features closer to the decoder's and reduces the artefacts of plain skips. Levels
follow FlexUNet's schedule (``base_filters * 2**i`` filters, kernel ``base_kernels``,
dropout ``dropout_rate * i``); the paper's 5 levels of 32 ... 512 filters are
``base_filters=32, num_layers=5``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from flexunet.models.common import check_common, head, image_input, kernel_size
from flexunet.models.unet_blocks import check_levels, double_conv

#: The sharpening kernel of the paper.
SHARPEN = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype="float32")


def build_sharp_unet(
    image_width: int = 128,
    image_height: int = 128,
    image_channels: int = 3,
    num_classes: int = 2,
    base_filters: int = 16,
    num_layers: int = 5,
    dropout_rate: float = 0.05,
    base_kernels: int | Sequence[int] = 3,
) -> keras.Model:
    """Build a Sharp U-Net with ``num_layers`` levels (pure function of its arguments)."""
    check_common(image_width, image_height, image_channels, num_classes)
    filters = check_levels(image_width, image_height, base_filters, num_layers, dropout_rate)
    kernel = kernel_size(base_kernels)
    inputs, x = image_input(image_width, image_height, image_channels)
    sharpeners = []
    skips = []
    for i, f in enumerate(filters):
        x = double_conv(x, f, kernel, dropout_rate * i, f"enc{i}")
        if i < num_layers - 1:
            sharpen = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"sharp{i}")
            skips.append(sharpen(x))
            sharpeners.append(sharpen)
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    for i in range(num_layers - 2, -1, -1):
        x = layers.Conv2DTranspose(filters[i], 2, strides=2, padding="same", name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, skips[i]])
        x = double_conv(x, filters[i], kernel, dropout_rate * i, f"dec{i}")
    model = keras.Model(inputs, head(x, num_classes), name="sharp_unet")
    for sharpen, f in zip(sharpeners, filters, strict=False):
        sharpen.set_weights([np.repeat(SHARPEN[:, :, None, None], f, axis=2)])
        sharpen.trainable = False
    return model
