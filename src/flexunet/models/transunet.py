"""TransUNet (Chen et al., 2021, "TransUNet: Transformers Make Strong Encoders for Medical
Image Segmentation").

A convolutional encoder (``len(filter_num)`` levels of ``stack_num_down`` 3x3 conv-BN-ReLU,
2x2 max pooling between them; the paper uses a ResNet50 here, the predecessor plain
convolutions, as this builder) whose deepest feature map becomes a sequence of tokens:
projected to ``embed_dim``, with a learned position embedding, through ``num_transformer``
pre-norm transformer layers (``num_heads`` heads, an MLP of ``num_mlp`` GELU units). The
tokens are folded back into a map and a cascaded upsampler decodes it with the encoder's
skips (2x upsampling, concatenation, ``stack_num_up`` convolutions per level). The keys are
the predecessor's.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from flexunet.errors import ConfigError
from flexunet.models.common import (
    check_common,
    check_dropout,
    check_multiple,
    check_positive,
    conv_bn_act,
    head,
    image_input,
    upsample,
)
from flexunet.models.transformer_layers import PositionEmbedding


def transformer_layer(x, heads: int, num_mlp: int, dropout: float, name: str):
    """Pre-norm multi-head self-attention and MLP, each residual (ViT)."""
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    y = layers.MultiHeadAttention(heads, x.shape[-1] // heads, dropout=dropout,
                                  name=f"{name}_attention")(y, y)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    y = layers.Dense(num_mlp, activation="gelu", name=f"{name}_mlp1")(y)
    if dropout > 0:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = layers.Dense(x.shape[-1], name=f"{name}_mlp2")(y)
    return layers.Add(name=f"{name}_add2")([x, y])


def build_transunet(
    image_width: int = 128,
    image_height: int = 128,
    image_channels: int = 3,
    num_classes: int = 2,
    filter_num: Sequence[int] = (16, 32, 64, 128),
    stack_num_down: int = 2,
    stack_num_up: int = 2,
    embed_dim: int = 128,
    num_mlp: int = 256,
    num_heads: int = 4,
    num_transformer: int = 4,
    dropout_rate: float = 0.0,
) -> keras.Model:
    """Build a TransUNet (pure function of its arguments)."""
    check_common(image_width, image_height, image_channels, num_classes)
    filters = [int(f) for f in filter_num]
    if len(filters) < 2 or min(filters) < 1:
        raise ConfigError(f"model.filter_num={filters}: give at least 2 positive filter counts")
    check_positive(stack_num_down=stack_num_down, stack_num_up=stack_num_up,
                   embed_dim=embed_dim, num_mlp=num_mlp, num_heads=num_heads,
                   num_transformer=num_transformer)
    check_dropout(dropout_rate)
    if embed_dim % num_heads:
        raise ConfigError(
            f"model.embed_dim={embed_dim}: must be divisible by model.num_heads={num_heads}"
        )
    levels = len(filters)
    check_multiple(image_width, image_height, 2 ** (levels - 1),
                   f"filter_num has {levels} levels, halving the image {levels - 1} times")

    inputs, x = image_input(image_width, image_height, image_channels)
    skips = []
    for i, f in enumerate(filters):
        if i:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
        for k in range(stack_num_down):
            x = conv_bn_act(x, f, 3, f"enc{i}_{k}")
    rows, cols = x.shape[1], x.shape[2]
    x = layers.Conv2D(embed_dim, 1, name="embed")(x)
    x = layers.Reshape((rows * cols, embed_dim), name="tokens")(x)
    x = PositionEmbedding(name="position")(x)
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="embed_dropout")(x)
    for k in range(num_transformer):
        x = transformer_layer(x, num_heads, num_mlp, dropout_rate, f"vit{k}")
    x = layers.LayerNormalization(epsilon=1e-6, name="vit_norm")(x)
    x = layers.Reshape((rows, cols, embed_dim), name="untokens")(x)
    x = conv_bn_act(x, filters[-1], 3, "bridge")
    for i in range(levels - 2, -1, -1):
        x = upsample(x, 2, f"dec{i}_up")
        x = layers.Concatenate(name=f"dec{i}_concat")([x, skips[i]])
        for k in range(stack_num_up):
            x = conv_bn_act(x, filters[i], 3, f"dec{i}_{k}")
    return keras.Model(inputs, head(x, num_classes), name="transunet")
