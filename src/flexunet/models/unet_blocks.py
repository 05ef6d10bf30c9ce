"""The plain U-Net pieces the convolutional zoo members share: the level schedule and the
double convolution of each level, with FlexUNet's meaning of ``base_filters``, ``num_layers``,
``dropout_rate`` and ``base_kernels``."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from flexunet.errors import ConfigError
from flexunet.models.common import check_dropout, check_multiple, check_positive, conv_bn_act


def check_levels(
    image_width: int, image_height: int, base_filters: int, num_layers: int, dropout_rate: float
) -> list[int]:
    """Filters per level (``base_filters * 2**i``); the size must survive ``num_layers - 1``
    halvings and dropout ``dropout_rate * level`` must stay below 1 at the bridge."""
    if num_layers < 2:
        raise ConfigError(f"model.num_layers={num_layers}: need at least 2 levels")
    check_positive(base_filters=base_filters)
    check_dropout(dropout_rate)
    if dropout_rate * (num_layers - 1) >= 1.0:
        raise ConfigError(
            f"model.dropout_rate={dropout_rate}: dropout grows as dropout_rate * level and "
            f"would reach {dropout_rate * (num_layers - 1):.2f} at level {num_layers - 1}; "
            f"use dropout_rate < {1.0 / (num_layers - 1):.4f}"
        )
    factor = 2 ** (num_layers - 1)
    check_multiple(image_width, image_height, factor,
                   f"with num_layers={num_layers} the image is halved {num_layers - 1} times")
    return [base_filters * 2**i for i in range(num_layers)]


def double_conv(
    x: keras.KerasTensor,
    filters: int,
    kernel: int | Sequence[int],
    dropout: float,
    name: str,
) -> keras.KerasTensor:
    """conv-BN-ReLU -> dropout -> conv-BN-ReLU, as each FlexUNet level (with BatchNorm)."""
    x = conv_bn_act(x, filters, kernel, f"{name}_1")
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return conv_bn_act(x, filters, kernel, f"{name}_2")
