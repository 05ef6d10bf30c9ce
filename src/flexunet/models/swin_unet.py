"""Swin-UNet (Cao et al., 2021, "Swin-Unet: Unet-like Pure Transformer for Medical Image
Segmentation").

A U-Net made of Swin Transformer blocks. The image is cut into ``patch_size`` patches embedded
in ``filter_num_begin`` channels; level ``i`` (of ``depth``) runs ``stack_num_down`` Swin
blocks with ``num_heads[i]`` heads in ``window_size[i]`` windows, alternating plain and
shifted windows when ``shift_window``, then patch merging halves the resolution and doubles
the channels (the last level is the bottleneck). The decoder mirrors it with patch expanding,
concatenation with the skip, a linear layer back to the level's width and ``stack_num_up``
blocks; a final 4x (``patch_size``) patch expanding restores the input size for the head.
The keys are the predecessor's (``num_mlp``: hidden units of every block's MLP). A window
larger than its level's feature map shrinks to the map, unshifted, as in Swin.
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
    head,
    image_input,
    kernel_size,
)
from flexunet.models.transformer_layers import PatchExpanding, PatchMerging, SwinBlock


def _per_level(value: int | Sequence[int], depth: int, name: str) -> list[int]:
    values = [int(value)] * depth if isinstance(value, int) else [int(v) for v in value]
    if len(values) != depth or min(values) < 1:
        raise ConfigError(
            f"model.{name}={values}: give one positive number or {depth} (one per level, "
            f"model.depth={depth})"
        )
    return values


def _windows(size: tuple[int, int], patch: int, depth: int, wanted: list[int]) -> list[int]:
    """Each level's window, checked against its feature map (square maps only shrink)."""
    windows = []
    for i, window in enumerate(wanted):
        rows, cols = size[1] // (patch * 2**i), size[0] // (patch * 2**i)
        window = min(window, rows, cols)
        if rows % window or cols % window:
            raise ConfigError(
                f"model.window_size={wanted}: level {i}'s {cols}x{rows} feature map is not "
                f"divisible by its window {window}; choose a window that divides it"
            )
        windows.append(window)
    return windows


def swin_stack(x, count: int, heads: int, window: int, num_mlp: int, shift: bool,
               dropout: float, name: str):
    rows, cols = x.shape[1], x.shape[2]
    for k in range(count):
        shifted = shift and k % 2 == 1 and window < min(rows, cols)
        x = SwinBlock(heads, window, window // 2 if shifted else 0, num_mlp, dropout,
                      name=f"{name}_block{k}")(x)
    return x


def build_swin_unet(
    image_width: int = 128,
    image_height: int = 128,
    image_channels: int = 3,
    num_classes: int = 2,
    filter_num_begin: int = 32,
    depth: int = 3,
    stack_num_down: int = 2,
    stack_num_up: int = 2,
    patch_size: int | Sequence[int] = 4,
    num_heads: int | Sequence[int] = (2, 4, 8),
    window_size: int | Sequence[int] = 4,
    num_mlp: int = 128,
    shift_window: bool = True,
    dropout_rate: float = 0.0,
) -> keras.Model:
    """Build a Swin-UNet (pure function of its arguments)."""
    check_common(image_width, image_height, image_channels, num_classes)
    check_positive(filter_num_begin=filter_num_begin, depth=depth, stack_num_down=stack_num_down,
                   stack_num_up=stack_num_up, num_mlp=num_mlp)
    check_dropout(dropout_rate)
    rows, cols = kernel_size(patch_size, "patch_size")
    if rows != cols:
        raise ConfigError(f"model.patch_size={[rows, cols]}: use square patches, e.g. 4")
    patch = rows
    check_multiple(image_width, image_height, patch * 2 ** (depth - 1),
                   f"patch_size={patch} and depth={depth} give {depth} levels of patches")
    heads = _per_level(num_heads, depth, "num_heads")
    for i, h in enumerate(heads):
        if (filter_num_begin * 2**i) % h:
            raise ConfigError(
                f"model.num_heads={heads}: level {i} has {filter_num_begin * 2**i} channels, "
                f"not divisible by {h} heads"
            )
    windows = _windows((image_width, image_height), patch, depth,
                       _per_level(window_size, depth, "window_size"))

    inputs, x = image_input(image_width, image_height, image_channels)
    x = layers.Conv2D(filter_num_begin, patch, strides=patch, name="patch_embed")(x)
    x = layers.LayerNormalization(epsilon=1e-5, name="patch_embed_norm")(x)
    skips = []
    for i in range(depth):
        x = swin_stack(x, stack_num_down, heads[i], windows[i], num_mlp, shift_window,
                       dropout_rate, f"down{i}")
        if i < depth - 1:
            skips.append(x)
            x = PatchMerging(name=f"merge{i}")(x)
    for i in range(depth - 2, -1, -1):
        x = PatchExpanding(2, 2, name=f"expand{i}")(x)
        x = layers.Concatenate(name=f"up{i}_concat")([x, skips[i]])
        x = layers.Dense(filter_num_begin * 2**i, use_bias=False, name=f"up{i}_linear")(x)
        x = swin_stack(x, stack_num_up, heads[i], windows[i], num_mlp, shift_window,
                       dropout_rate, f"up{i}")
    x = layers.LayerNormalization(epsilon=1e-5, name="up_norm")(x)
    x = PatchExpanding(patch, 1, name="expand_final")(x)
    return keras.Model(inputs, head(x, num_classes), name="swin_unet")
