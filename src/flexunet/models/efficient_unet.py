"""A U-Net on an EfficientNet encoder (Tan & Le, 2019, "EfficientNet: Rethinking Model
Scaling for Convolutional Neural Networks"; B0 ... B7 from ``keras.applications``).

The encoder's features at strides 2, 4, 8, 16 (the expansion activations of blocks 2a, 3a,
4a and 6a) are the skips and its last activation (stride 32) the bridge; each of the five
decoder levels upsamples 2x (transposed convolution), concatenates the skip of that scale
(none at full size) and applies two 3x3 conv-BN-ReLU with ``decoder_filters[i]`` filters.
EfficientNet rescales the raw 0-255 input itself (its own Rescaling and Normalization layers).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from flexunet.errors import ConfigError
from flexunet.models.common import check_common, check_dropout, check_multiple, head, image_input
from flexunet.models.encoders import freeze, resolve_weights
from flexunet.models.unet_blocks import double_conv

VARIANTS = tuple(f"B{i}" for i in range(8))
#: Encoder layers whose outputs are the skips, at strides 16, 8, 4, 2.
SKIPS = ("block6a_expand_activation", "block4a_expand_activation",
         "block3a_expand_activation", "block2a_expand_activation")


def build_efficient_unet(
    image_width: int = 128,
    image_height: int = 128,
    image_channels: int = 3,
    num_classes: int = 2,
    variant: str = "B0",
    encoder_weights: str | None = None,
    freeze_encoder: bool = False,
    decoder_filters: Sequence[int] = (256, 128, 64, 32, 16),
    dropout_rate: float = 0.0,
) -> keras.Model:
    """Build an EfficientNet-``variant`` U-Net (pure function of its arguments and weights)."""
    check_common(image_width, image_height, image_channels, num_classes)
    if variant not in VARIANTS:
        raise ConfigError(f"model.variant={variant}: use one of {', '.join(VARIANTS)}")
    if len(decoder_filters) != 5 or min(decoder_filters) < 1:
        raise ConfigError(
            f"model.decoder_filters={list(decoder_filters)}: give 5 positive filter counts, "
            "one per decoder level (strides 16, 8, 4, 2, 1)"
        )
    check_dropout(dropout_rate)
    check_multiple(image_width, image_height, 32, "EfficientNet halves the image 5 times")
    weights = resolve_weights(encoder_weights, image_channels)

    inputs, _ = image_input(image_width, image_height, image_channels, rescale=False)
    application = getattr(keras.applications, f"EfficientNet{variant}")
    encoder = application(include_top=False, weights=weights, input_tensor=inputs)
    if freeze_encoder:
        freeze(encoder)
    x = encoder.get_layer("top_activation").output
    for i, filters in enumerate(decoder_filters):
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{i}_up")(x)
        if i < len(SKIPS):
            x = layers.Concatenate(name=f"dec{i}_concat")([x, encoder.get_layer(SKIPS[i]).output])
        x = double_conv(x, filters, 3, dropout_rate, f"dec{i}")
    return keras.Model(inputs, head(x, num_classes), name=f"efficient_unet_{variant.lower()}")
