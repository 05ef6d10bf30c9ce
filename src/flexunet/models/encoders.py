"""Pretrained encoders from ``keras.applications`` for the zoo's encoder-decoder models.

``encoder_weights``: null (random initialisation, works offline), ``imagenet`` (Keras
downloads the ImageNet weights on first use into ``~/.keras/models``, so the first build needs
the network; later builds read the cache) or the path of a ``.weights.h5`` file saved from the
same application. ``freeze_encoder`` keeps the encoder's weights (and its BatchNorm
statistics) fixed while the decoder trains.
"""

from __future__ import annotations

from pathlib import Path

import keras

from flexunet.errors import ConfigError


def resolve_weights(encoder_weights: str | None, image_channels: int) -> str | None:
    """``encoder_weights`` as keras.applications takes it, checked before anything is built."""
    if encoder_weights is None:
        return None
    if encoder_weights != "imagenet" and not Path(encoder_weights).is_file():
        raise ConfigError(
            f"model.encoder_weights={encoder_weights}: not a file; use null (random), "
            f"imagenet (downloaded on first use) or the path of a .weights.h5 file"
        )
    if image_channels != 3:
        raise ConfigError(
            f"model.image_channels={image_channels}: pretrained encoder weights need 3 "
            f"(RGB) channels; use model.encoder_weights=null for other inputs"
        )
    return str(encoder_weights)


def freeze(encoder: keras.Model) -> None:
    """Make every layer of ``encoder`` untrainable (BatchNorm then runs in inference mode)."""
    for layer in encoder.layers:
        layer.trainable = False
