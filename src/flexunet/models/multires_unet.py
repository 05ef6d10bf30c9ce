"""MultiResUNet (Ibtehaz & Rahman, 2020, "MultiResUNet: Rethinking the U-Net architecture
for multimodal biomedical image segmentation").

Each level's two convolutions become a MultiRes block: three chained 3x3 convolutions with
``W/6``, ``W/3`` and ``W/2`` filters (``W = alpha * U``; together they see 3x3, 5x5 and 7x7)
concatenated and added to a 1x1 shortcut; and each skip connection becomes a Res path of
``num_layers - 1 - i`` residual 3x3 convolutions (fewer the deeper the level, where encoder
and decoder features differ less). ``U = base_filters * 2**i`` (the paper: 32 ... 512 over 5
levels, alpha 1.67); dropout ``dropout_rate * i`` after each encoder block.
"""

from __future__ import annotations

import keras
from keras import layers

from flexunet.errors import ConfigError
from flexunet.models.common import check_common, conv_bn_act, head, image_input
from flexunet.models.normalization import BatchNormalization
from flexunet.models.unet_blocks import check_levels


def multires_block(x: keras.KerasTensor, units: int, alpha: float, name: str):
    width = alpha * units
    sizes = [max(int(width / 6), 1), max(int(width / 3), 1), max(int(width / 2), 1)]
    shortcut = conv_bn_act(x, sum(sizes), 1, f"{name}_short", activation=None)
    a = conv_bn_act(x, sizes[0], 3, f"{name}_3x3")
    b = conv_bn_act(a, sizes[1], 3, f"{name}_5x5")
    c = conv_bn_act(b, sizes[2], 3, f"{name}_7x7")
    out = layers.Concatenate(name=f"{name}_concat")([a, b, c])
    out = BatchNormalization(name=f"{name}_bn")(out)
    out = layers.Add(name=f"{name}_add")([shortcut, out])
    out = layers.Activation("relu", name=f"{name}_relu")(out)
    return BatchNormalization(name=f"{name}_out_bn")(out)


def res_path(x: keras.KerasTensor, filters: int, length: int, name: str):
    for k in range(length):
        shortcut = conv_bn_act(x, filters, 1, f"{name}{k}_short", activation=None)
        y = conv_bn_act(x, filters, 3, f"{name}{k}_conv")
        x = layers.Add(name=f"{name}{k}_add")([shortcut, y])
        x = layers.Activation("relu", name=f"{name}{k}_relu")(x)
        x = BatchNormalization(name=f"{name}{k}_bn")(x)
    return x


def build_multires_unet(
    image_width: int = 128,
    image_height: int = 128,
    image_channels: int = 3,
    num_classes: int = 2,
    base_filters: int = 16,
    num_layers: int = 5,
    dropout_rate: float = 0.05,
    alpha: float = 1.67,
) -> keras.Model:
    """Build a MultiResUNet with ``num_layers`` levels (pure function of its arguments)."""
    check_common(image_width, image_height, image_channels, num_classes)
    filters = check_levels(image_width, image_height, base_filters, num_layers, dropout_rate)
    if alpha <= 0:
        raise ConfigError(f"model.alpha={alpha}: must be positive (the paper uses 1.67)")
    inputs, x = image_input(image_width, image_height, image_channels)
    skips = []
    for i, f in enumerate(filters):
        x = multires_block(x, f, alpha, f"enc{i}")
        if dropout_rate * i > 0:
            x = layers.Dropout(dropout_rate * i, name=f"enc{i}_dropout")(x)
        if i < num_layers - 1:
            skips.append(res_path(x, f, num_layers - 1 - i, f"path{i}_"))
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    for i in range(num_layers - 2, -1, -1):
        x = layers.Conv2DTranspose(filters[i], 2, strides=2, padding="same", name=f"dec{i}_up")(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, skips[i]])
        x = multires_block(x, filters[i], alpha, f"dec{i}_block")
    return keras.Model(inputs, head(x, num_classes), name="multires_unet")
