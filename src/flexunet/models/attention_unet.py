"""Attention U-Net (Oktay et al., 2018, "Attention U-Net: Learning Where to Look for the
Pancreas").

A U-Net whose skip connections pass through additive attention gates: the skip features
``x`` (stride-2 2x2 convolution down to the gating resolution) and the coarser decoder
features ``g`` (1x1 convolution) are added, passed through ReLU and a 1x1 convolution to one
sigmoid coefficient per pixel, which is upsampled and multiplies ``x`` before the
concatenation. Levels follow FlexUNet's schedule: ``base_filters * 2**i`` filters, kernel
``base_kernels``, dropout ``dropout_rate * i``, BatchNorm after every convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from flexunet.models.common import check_common, head, image_input, kernel_size
from flexunet.models.normalization import BatchNormalization
from flexunet.models.unet_blocks import check_levels, double_conv


def attention_gate(skip: keras.KerasTensor, gate: keras.KerasTensor, inter: int, name: str):
    """``skip`` weighted by the additive attention coefficients computed from ``gate``
    (half ``skip``'s resolution)."""
    theta = layers.Conv2D(inter, 2, strides=2, use_bias=False, name=f"{name}_theta")(skip)
    phi = layers.Conv2D(inter, 1, name=f"{name}_phi")(gate)
    f = layers.Activation("relu", name=f"{name}_relu")(layers.Add(name=f"{name}_add")([theta, phi]))
    psi = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_psi")(f)
    psi = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(psi)
    gated = layers.Multiply(name=f"{name}_weigh")([skip, psi])
    out = layers.Conv2D(skip.shape[-1], 1, name=f"{name}_out")(gated)
    return BatchNormalization(name=f"{name}_bn")(out)


def build_attention_unet(
    image_width: int = 128,
    image_height: int = 128,
    image_channels: int = 3,
    num_classes: int = 2,
    base_filters: int = 16,
    num_layers: int = 5,
    dropout_rate: float = 0.05,
    base_kernels: int | Sequence[int] = 3,
) -> keras.Model:
    """Build an Attention U-Net with ``num_layers`` levels (pure function of its arguments)."""
    check_common(image_width, image_height, image_channels, num_classes)
    filters = check_levels(image_width, image_height, base_filters, num_layers, dropout_rate)
    kernel = kernel_size(base_kernels)
    inputs, x = image_input(image_width, image_height, image_channels)
    skips = []
    for i, f in enumerate(filters):
        x = double_conv(x, f, kernel, dropout_rate * i, f"enc{i}")
        if i < num_layers - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    for i in range(num_layers - 2, -1, -1):
        gated = attention_gate(skips[i], x, max(filters[i] // 2, 1), f"att{i}")
        x = layers.Conv2DTranspose(filters[i], 2, strides=2, padding="same", name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, gated])
        x = double_conv(x, filters[i], kernel, dropout_rate * i, f"dec{i}")
    return keras.Model(inputs, head(x, num_classes), name="attention_unet")
