"""DeepLabV3+ (Chen et al., 2018, "Encoder-Decoder with Atrous Separable Convolution for
Semantic Image Segmentation") on a ResNet50 encoder from ``keras.applications``.

The encoder's stride-16 features (``conv4_block6_out``) go through atrous spatial pyramid
pooling: a 1x1 convolution, 3x3 convolutions at ``atrous_rates`` and the image-level average,
each with ``aspp_filters`` filters, concatenated and projected by a 1x1 convolution. The
decoder upsamples that 4x, concatenates the stride-4 features (``conv2_block3_out``) reduced to
``low_level_filters`` channels, refines with two 3x3 convolutions of ``decoder_filters`` and
upsamples 4x to the input size. ResNet50 expects Caffe-style input (BGR, ImageNet mean
subtracted, 0-255): a fixed, untrained 1x1 convolution (``caffe_preprocess``) does that
inside the model, so it takes raw RGB pixels like every other model here.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
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
from flexunet.models.encoders import freeze, resolve_weights

#: ImageNet mean of the Caffe-trained ResNet50, in BGR order.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def build_deeplabv3plus(
    image_width: int = 128,
    image_height: int = 128,
    image_channels: int = 3,
    num_classes: int = 2,
    encoder_weights: str | None = None,
    freeze_encoder: bool = False,
    aspp_filters: int = 256,
    atrous_rates: Sequence[int] = (6, 12, 18),
    low_level_filters: int = 48,
    decoder_filters: int = 256,
    dropout_rate: float = 0.1,
) -> keras.Model:
    """Build a DeepLabV3+ on ResNet50 (pure function of its arguments and the weights file)."""
    check_common(image_width, image_height, image_channels, num_classes)
    check_positive(aspp_filters=aspp_filters, low_level_filters=low_level_filters,
                   decoder_filters=decoder_filters)
    check_dropout(dropout_rate)
    if not atrous_rates or min(atrous_rates) < 1:
        raise ConfigError(f"model.atrous_rates={list(atrous_rates)}: give positive rates")
    check_multiple(image_width, image_height, 16, "the ResNet50 features used are at stride 16")
    weights = resolve_weights(encoder_weights, image_channels)

    inputs, _ = image_input(image_width, image_height, image_channels, rescale=False)
    caffe = layers.Conv2D(3, 1, name="caffe_preprocess")
    x = caffe(inputs) if image_channels == 3 else inputs
    encoder = keras.applications.ResNet50(include_top=False, weights=weights, input_tensor=x)
    if freeze_encoder:
        freeze(encoder)
    high = encoder.get_layer("conv4_block6_out").output
    low = encoder.get_layer("conv2_block3_out").output

    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(high)
    pooled = conv_bn_act(pooled, aspp_filters, 1, "aspp_image")
    pooled = layers.UpSampling2D((image_height // 16, image_width // 16), name="aspp_image_up")(
        pooled
    )
    branches = [pooled, conv_bn_act(high, aspp_filters, 1, "aspp_1x1")]
    branches += [conv_bn_act(high, aspp_filters, 3, f"aspp_rate{r}", dilation=int(r))
                 for r in atrous_rates]
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = conv_bn_act(x, aspp_filters, 1, "aspp_project")
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="aspp_dropout")(x)
    x = upsample(x, 4, "decoder_up4")
    low = conv_bn_act(low, low_level_filters, 1, "decoder_low")
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = conv_bn_act(x, decoder_filters, 3, "decoder_1")
    x = conv_bn_act(x, decoder_filters, 3, "decoder_2")
    x = upsample(x, 4, "decoder_up_full")
    model = keras.Model(inputs, head(x, num_classes), name="deeplabv3plus")
    if image_channels == 3:  # RGB -> BGR, minus the mean: fixed, never trained
        kernel = np.zeros((1, 1, 3, 3), dtype="float32")
        for rgb, bgr in ((0, 2), (1, 1), (2, 0)):
            kernel[0, 0, rgb, bgr] = 1.0
        caffe.set_weights([kernel, -np.array(CAFFE_MEAN_BGR, dtype="float32")])
        caffe.trainable = False
    return model
