"""UNet 3+ (Huang et al., 2020, "UNet 3+: A Full-Scale Connected UNet for Medical Image
Segmentation").

Full-scale skip connections: decoder level ``i`` gathers every encoder level at or above it
(max-pooled down to its scale), and every deeper decoder level and the bridge (bilinearly
upsampled), each reduced by a 3x3 convolution to ``base_filters`` channels (the paper's 64 =
its first level's filters); the ``num_layers * base_filters`` channels are fused by one 3x3
conv-BN-ReLU. Encoder levels follow FlexUNet's schedule (``base_filters * 2**i`` filters,
kernel ``base_kernels``, dropout ``dropout_rate * i``). The paper's deep supervision and
classification-guided module are left out: one head on the full-resolution decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from flexunet.models.common import (
    check_common,
    conv_bn_act,
    head,
    image_input,
    kernel_size,
    upsample,
)
from flexunet.models.unet_blocks import check_levels, double_conv


def build_unet3plus(
    image_width: int = 128,
    image_height: int = 128,
    image_channels: int = 3,
    num_classes: int = 2,
    base_filters: int = 16,
    num_layers: int = 5,
    dropout_rate: float = 0.05,
    base_kernels: int | Sequence[int] = 3,
) -> keras.Model:
    """Build a UNet 3+ with ``num_layers`` levels (pure function of its arguments)."""
    check_common(image_width, image_height, image_channels, num_classes)
    filters = check_levels(image_width, image_height, base_filters, num_layers, dropout_rate)
    kernel = kernel_size(base_kernels)
    inputs, x = image_input(image_width, image_height, image_channels)
    encoder = []
    for i, f in enumerate(filters):
        if i:
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
        x = double_conv(x, f, kernel, dropout_rate * i, f"enc{i}")
        encoder.append(x)
    decoder = {num_layers - 1: encoder[-1]}
    for i in range(num_layers - 2, -1, -1):
        parts = []
        for j in range(num_layers):
            name = f"dec{i}_from{j}"
            if j < i:
                source = layers.MaxPooling2D(2 ** (i - j), name=f"{name}_pool")(encoder[j])
            elif j == i:
                source = encoder[j]
            else:
                source = upsample(decoder[j], 2 ** (j - i), f"{name}_up")
            parts.append(conv_bn_act(source, base_filters, 3, name))
        x = layers.Concatenate(name=f"dec{i}_concat")(parts)
        decoder[i] = conv_bn_act(x, base_filters * num_layers, 3, f"dec{i}_fuse")
    return keras.Model(inputs, head(decoder[0], num_classes), name="unet3plus")
