"""U²-Net (Qin et al., 2020, "U²-Net: Going deeper with nested U-structure for salient object
detection").

A U-Net of ``num_layers`` stages whose every stage is itself a small U-Net, a residual U-block
(RSU-L): an input convolution with ``out`` filters, an encoder of ``L - 1`` convolutions with
``mid`` filters and ``L - 2`` poolings, a dilated bottom convolution, a decoder back up, and
the input convolution added. Stage ``i`` of the encoder is an RSU of height
``num_layers + 1 - i``, so every stage pools down to the same coarsest scale; the last two
stages, already small, are RSU-4F blocks (dilations 1, 2, 4, 8, no pooling). Filters:
``out_i = base_filters * 2**min(i, 3)``, ``mid_i = mid_filters * 2**max(min(i, 4) - 1, 0)``
(the paper: base_filters=64, mid_filters=32, num_layers=6: out 64 ... 512, mid 32 ... 256);
decoder stage ``i`` uses ``mid_i`` and the outputs of encoder stage ``max(i - 1, 0)``. Each
decoder stage and the bottom stage give a 3x3 side map, upsampled to full size; the head
fuses them with its 1x1 convolution (the paper's fused map; its deep-supervision losses on
each side map are left out).
"""

from __future__ import annotations

import keras
from keras import layers

from flexunet.errors import ConfigError
from flexunet.models.common import (
    check_common,
    check_multiple,
    check_positive,
    conv_bn_act,
    head,
    image_input,
    upsample,
)


def rsu(x: keras.KerasTensor, height: int, mid: int, out: int, name: str) -> keras.KerasTensor:
    """Residual U-block RSU-``height``."""
    x_in = conv_bn_act(x, out, 3, f"{name}_in")
    encoder = [conv_bn_act(x_in, mid, 3, f"{name}_e1")]
    for k in range(2, height):
        pooled = layers.MaxPooling2D(2, name=f"{name}_pool{k}")(encoder[-1])
        encoder.append(conv_bn_act(pooled, mid, 3, f"{name}_e{k}"))
    d = conv_bn_act(encoder[-1], mid, 3, f"{name}_bottom", dilation=2)
    d = conv_bn_act(layers.Concatenate(name=f"{name}_c{height - 1}")([d, encoder[-1]]),
                    mid, 3, f"{name}_d{height - 1}")
    for k in range(height - 3, -1, -1):
        d = upsample(d, 2, f"{name}_up{k + 1}")
        d = layers.Concatenate(name=f"{name}_c{k + 1}")([d, encoder[k]])
        d = conv_bn_act(d, out if k == 0 else mid, 3, f"{name}_d{k + 1}")
    return layers.Add(name=f"{name}_res")([d, x_in])


def rsu4f(x: keras.KerasTensor, mid: int, out: int, name: str) -> keras.KerasTensor:
    """RSU-4F: dilated convolutions instead of pooling (the small deep stages)."""
    x_in = conv_bn_act(x, out, 3, f"{name}_in")
    e1 = conv_bn_act(x_in, mid, 3, f"{name}_e1")
    e2 = conv_bn_act(e1, mid, 3, f"{name}_e2", dilation=2)
    e3 = conv_bn_act(e2, mid, 3, f"{name}_e3", dilation=4)
    e4 = conv_bn_act(e3, mid, 3, f"{name}_e4", dilation=8)
    d3 = conv_bn_act(layers.Concatenate(name=f"{name}_c3")([e4, e3]), mid, 3, f"{name}_d3",
                     dilation=4)
    d2 = conv_bn_act(layers.Concatenate(name=f"{name}_c2")([d3, e2]), mid, 3, f"{name}_d2",
                     dilation=2)
    d1 = conv_bn_act(layers.Concatenate(name=f"{name}_c1")([d2, e1]), out, 3, f"{name}_d1")
    return layers.Add(name=f"{name}_res")([d1, x_in])


def build_u2net(
    image_width: int = 128,
    image_height: int = 128,
    image_channels: int = 3,
    num_classes: int = 2,
    base_filters: int = 16,
    mid_filters: int = 8,
    num_layers: int = 5,
) -> keras.Model:
    """Build a U²-Net of ``num_layers`` stages (pure function of its arguments)."""
    check_common(image_width, image_height, image_channels, num_classes)
    check_positive(base_filters=base_filters, mid_filters=mid_filters)
    if num_layers < 3:
        raise ConfigError(f"model.num_layers={num_layers}: U²-Net needs at least 3 stages")
    check_multiple(image_width, image_height, 2 ** (num_layers - 1),
                   f"with num_layers={num_layers} every stage pools {num_layers - 1} times")
    out = [base_filters * 2 ** min(i, 3) for i in range(num_layers)]
    mid = [mid_filters * 2 ** max(min(i, 4) - 1, 0) for i in range(num_layers)]

    def stage(x: keras.KerasTensor, i: int, mid_: int, out_: int, name: str):
        if i >= num_layers - 2:
            return rsu4f(x, mid_, out_, name)
        return rsu(x, num_layers + 1 - i, mid_, out_, name)

    inputs, x = image_input(image_width, image_height, image_channels)
    encoder = []
    for i in range(num_layers):
        if i:
            x = layers.MaxPooling2D(2, name=f"stage{i}_pool")(x)
        x = stage(x, i, mid[i], out[i], f"en{i}")
        encoder.append(x)
    bottom = num_layers - 1
    side = layers.Conv2D(num_classes, 3, padding="same", name=f"side{bottom}")(x)
    sides = [upsample(side, 2**bottom, f"side{bottom}_up")]
    for i in range(num_layers - 2, -1, -1):
        x = upsample(x, 2, f"de{i}_up")
        x = layers.Concatenate(name=f"de{i}_concat")([x, encoder[i]])
        x = stage(x, i, mid[i], out[max(i - 1, 0)], f"de{i}")
        side = layers.Conv2D(num_classes, 3, padding="same", name=f"side{i}")(x)
        sides.append(upsample(side, 2**i, f"side{i}_up"))
    fused = layers.Concatenate(name="sides")(sides)
    return keras.Model(inputs, head(fused, num_classes), name="u2net")
