"""FlexUNet architecture: published parameter counts, schedules, config errors, safe reload."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from flexunet.errors import ConfigError
from flexunet.models import build_flexunet, level_specs
from flexunet.models.normalization import BatchNormalization


def test_published_model_has_published_parameter_count() -> None:
    model = build_flexunet(
        image_width=512, image_height=512, image_channels=3, num_classes=2, base_filters=16,
        base_kernels=(11, 11), num_layers=8, dropout_rate=0.05,
    )
    assert model.count_params() == 126_809_218
    assert model.output_shape == (None, 512, 512, 2)


def test_dilated_six_class_variant_parameter_count() -> None:
    model = build_flexunet(
        base_filters=16, base_kernels=(9, 9), num_layers=8, dilation=(3, 3), num_classes=6
    )
    assert model.count_params() == 124_996_934


def test_level_schedules() -> None:
    specs = level_specs(16, (11, 11), 8, 0.05, (3, 3))
    assert [s.filters for s in specs] == [16, 32, 64, 128, 256, 512, 1024, 2048]
    assert [s.kernel for s in specs] == [11, 9, 7, 5, 3, 3, 3, 3]
    assert [s.dilation for s in specs] == [3, 2, 1, 1, 1, 1, 1, 1]
    assert [round(s.dropout, 4) for s in specs] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]


def test_layers_follow_schedule() -> None:
    model = build_flexunet(64, 64, base_filters=4, base_kernels=(7, 7), num_layers=3,
                           dilation=(2, 2), dropout_rate=0.1, normalization=True)
    conv = model.get_layer("enc1_conv1")
    assert conv.kernel_size == (5, 5) and conv.dilation_rate == (1, 1) and conv.filters == 8
    assert model.get_layer("enc0_conv2").dilation_rate == (2, 2)
    assert model.get_layer("enc2_dropout").rate == pytest.approx(0.2)
    assert model.get_layer("dec0_up").strides == (2, 2)
    assert isinstance(model.get_layer("dec0_bn2"), BatchNormalization)  # the fused one
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) and "enc2" in layer.name
                   for layer in model.layers)  # no pooling after the bridge


def test_sigmoid_head_for_one_class() -> None:
    model = build_flexunet(32, 32, num_classes=1, base_filters=2, base_kernels=3, num_layers=2)
    assert model.get_layer("head").activation.__name__ == "sigmoid"
    assert model.output_shape[-1] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_width": 100, "num_layers": 4}, "multiple of 8"),
        ({"base_kernels": (5, 3)}, "square kernels"),
        ({"dropout_rate": 0.15, "num_layers": 8}, "below 1.0"),
        ({"num_layers": 0}, "at least 1 level"),
    ],
)
def test_config_errors_before_any_tensor(kwargs: dict, message: str) -> None:
    args = {"image_width": 64, "image_height": 64, "base_filters": 2, "num_layers": 3} | kwargs
    with pytest.raises(ConfigError, match=message):
        build_flexunet(**args)


def test_saved_model_reloads_in_safe_mode_with_same_predictions(tmp_path) -> None:
    model = build_flexunet(32, 32, base_filters=2, base_kernels=(5, 5), num_layers=3,
                           normalization=True)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
