"""The FlexUNet architecture.

A U-Net whose level ``i`` (0 = full resolution) has ``base_filters * 2**i`` filters and a square
kernel ``max(base_kernels - 2*i, 3)``: large kernels where the image is large, small ones deep
down. Each level is conv -> dropout(dropout_rate * i) -> conv, followed by 2x2 max pooling except
at the last level (the bridge). The decoder mirrors the encoder with a stride-2 transposed
convolution, concatenation with the skip connection and the same two convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
from keras import layers

from flexunet.errors import ConfigError
from flexunet.models.normalization import BatchNormalization


@dataclass(frozen=True)
class LevelSpec:
    """What one encoder/decoder level uses; exposed so schedules can be tested and printed."""

    filters: int
    kernel: int
    dilation: int
    dropout: float


def _square(value: int | Sequence[int] | None, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    values = list(value)
    if len(values) != 2 or values[0] != values[1]:
        raise ConfigError(
            f"model.{name}={values}: FlexUNet uses square kernels; give two equal numbers, "
            f"e.g. model.{name}=[{values[0]},{values[0]}]"
        )
    return int(values[0])


def level_specs(
    base_filters: int = 16,
    base_kernels: int | Sequence[int] = (11, 11),
    num_layers: int = 8,
    dropout_rate: float = 0.05,
    dilation: int | Sequence[int] | None = None,
) -> list[LevelSpec]:
    """Per-level filters, kernel size, dilation rate and dropout rate of the encoder."""
    kernel = _square(base_kernels, "base_kernels", 3)
    rate = _square(dilation, "dilation", 1)
    if num_layers < 1:
        raise ConfigError(f"model.num_layers={num_layers}: need at least 1 level")
    if base_filters < 1:
        raise ConfigError(f"model.base_filters={base_filters}: need at least 1 filter")
    if kernel < 1 or rate < 1:
        raise ConfigError("model.base_kernels and model.dilation must be positive")
    bridge_dropout = dropout_rate * (num_layers - 1)
    if dropout_rate < 0 or bridge_dropout >= 1.0:
        raise ConfigError(
            f"model.dropout_rate={dropout_rate}: dropout grows as dropout_rate * level and would "
            f"reach {bridge_dropout:.2f} at the bridge (level {num_layers - 1}); it must stay "
            f"below 1.0, so use dropout_rate < {1.0 / max(num_layers - 1, 1):.4f}"
        )
    return [
        LevelSpec(
            filters=base_filters * 2**i,
            kernel=max(kernel - 2 * i, 3),
            dilation=max(rate - i, 1),
            dropout=dropout_rate * i,
        )
        for i in range(num_layers)
    ]


def _conv_block(
    x, spec: LevelSpec, normalization: bool, bn_momentum: float, activation: str, name: str
):
    for j in (1, 2):
        x = layers.Conv2D(
            spec.filters,
            spec.kernel,
            padding="same",
            dilation_rate=spec.dilation,
            kernel_initializer="he_normal",
            activation=None if normalization else activation,
            name=f"{name}_conv{j}",
        )(x)
        if normalization:
            x = BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{j}")(x)
            x = layers.Activation(activation, name=f"{name}_act{j}")(x)
        if j == 1 and spec.dropout > 0:
            x = layers.Dropout(spec.dropout, name=f"{name}_dropout")(x)
    return x


def build_flexunet(
    image_width: int = 512,
    image_height: int = 512,
    image_channels: int = 3,
    num_classes: int = 2,
    base_filters: int = 16,
    base_kernels: int | Sequence[int] = (11, 11),
    num_layers: int = 8,
    dropout_rate: float = 0.05,
    dilation: int | Sequence[int] | None = None,
    normalization: bool = False,
    bn_momentum: float = 0.99,
    input_normalize: bool = True,
    activation: str = "relu",
) -> keras.Model:
    """Build a FlexUNet. Pure function of its arguments; raises ConfigError on impossible shapes.

    The input takes raw 0-255 pixel values when ``input_normalize`` (scaled by a Rescaling layer
    so that saved models load in Keras' safe mode). The head is a 1x1 softmax over
    ``num_classes`` (a sigmoid when ``num_classes == 1``). ``bn_momentum`` is the BatchNorm
    moving-average momentum (with ``normalization``): 0.99 needs a few hundred steps before
    its statistics fit the weights; 0.9 suits short runs of few steps per epoch.
    """
    specs = level_specs(base_filters, base_kernels, num_layers, dropout_rate, dilation)
    factor = 2 ** (num_layers - 1)
    for key, size in (("image_width", image_width), ("image_height", image_height)):
        if size < factor or size % factor:
            raise ConfigError(
                f"model.{key}={size}: with num_layers={num_layers} the image is halved "
                f"{num_layers - 1} times, so the size must be a positive multiple of {factor}"
            )
    if num_classes < 1:
        raise ConfigError(f"model.num_classes={num_classes}: need at least 1 class")

    inputs = keras.Input((image_height, image_width, image_channels), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs) if input_normalize else inputs
    skips = []
    for i, spec in enumerate(specs):
        x = _conv_block(x, spec, normalization, bn_momentum, activation, f"enc{i}")
        if i < num_layers - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    for i in range(num_layers - 2, -1, -1):
        spec = specs[i]
        x = layers.Conv2DTranspose(
            spec.filters, 2, strides=2, padding="same", name=f"dec{i}_up"
        )(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, skips[i]])
        x = _conv_block(x, spec, normalization, bn_momentum, activation, f"dec{i}")
    head = "sigmoid" if num_classes == 1 else "softmax"
    outputs = layers.Conv2D(num_classes, 1, activation=head, dtype="float32", name="head")(x)
    return keras.Model(inputs, outputs, name="flexunet")
