"""Pieces every architecture of the zoo shares: the checked input, the head, conv blocks.

Every builder takes raw 0-255 pixels (scaled inside the model so that a saved model predicts
on raw images and loads in Keras' safe mode) and ends in a 1x1 convolution over
``num_classes`` with a softmax (sigmoid for one class) kept in float32, so that mixed
precision leaves the probabilities in full precision. Size checks raise
:class:`~flexunet.errors.ConfigError` before any tensor is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from flexunet.errors import ConfigError
from flexunet.models.normalization import BatchNormalization


def check_common(
    image_width: int, image_height: int, image_channels: int, num_classes: int
) -> None:
    """Positive sizes and at least one class."""
    for key, value in (("image_width", image_width), ("image_height", image_height),
                       ("image_channels", image_channels), ("num_classes", num_classes)):
        if value < 1:
            raise ConfigError(f"model.{key}={value}: must be at least 1")


def check_multiple(image_width: int, image_height: int, factor: int, why: str) -> None:
    """Both sides must be positive multiples of ``factor``; ``why`` says which knob asks it."""
    for key, size in (("image_width", image_width), ("image_height", image_height)):
        if size < factor or size % factor:
            raise ConfigError(
                f"model.{key}={size}: {why}, so the size must be a positive multiple of {factor}"
            )


def check_positive(**values: float) -> None:
    """Each named value must be positive (``model.NAME=VALUE: must be positive``)."""
    for key, value in values.items():
        if value is None or value <= 0:
            raise ConfigError(f"model.{key}={value}: must be positive")


def check_dropout(dropout_rate: float) -> None:
    if not 0.0 <= dropout_rate < 1.0:
        raise ConfigError(f"model.dropout_rate={dropout_rate}: must be in [0, 1)")


def kernel_size(value: int | Sequence[int], name: str = "base_kernels") -> tuple[int, int]:
    """An int or a pair as a (rows, cols) kernel; positive sizes only."""
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ConfigError(f"model.{name}={list(pair)}: give one positive size or two, e.g. [3, 3]")
    return pair  # type: ignore[return-value]


def image_input(
    image_width: int, image_height: int, image_channels: int, rescale: bool = True
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The model input (raw pixels) and, when ``rescale``, the same scaled to [0, 1]."""
    inputs = keras.Input((image_height, image_width, image_channels), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs) if rescale else inputs
    return inputs, x


def head(x: keras.KerasTensor, num_classes: int) -> keras.KerasTensor:
    """The 1x1 softmax (sigmoid for one class) over ``num_classes``, in float32."""
    activation = "sigmoid" if num_classes == 1 else "softmax"
    return layers.Conv2D(num_classes, 1, activation=activation, dtype="float32", name="head")(x)


def conv_bn_act(
    x: keras.KerasTensor,
    filters: int,
    kernel: int | tuple[int, int],
    name: str,
    *,
    dilation: int = 1,
    activation: str | None = "relu",
    normalization: bool = True,
) -> keras.KerasTensor:
    """Convolution ('same' padding, He init) -> BatchNorm -> activation."""
    x = layers.Conv2D(
        filters, kernel, padding="same", dilation_rate=dilation, use_bias=not normalization,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    if normalization:
        x = BatchNormalization(name=f"{name}_bn")(x)
    if activation:
        x = layers.Activation(activation, name=f"{name}_act")(x)
    return x


def upsample(x: keras.KerasTensor, factor: int, name: str) -> keras.KerasTensor:
    """Bilinear upsampling by ``factor`` (identity for 1)."""
    if factor == 1:
        return x
    return layers.UpSampling2D(factor, interpolation="bilinear", name=name)(x)
