"""The model zoo (docs/models.md): every architecture as ``debug=fast`` composes it, at 64x64:
output shape, pinned parameter count, one finite training step, a safe-mode reload that
predicts the same; impossible sizes are config errors raised before any tensor is built."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hydra.utils import instantiate

from flexunet.errors import ConfigError
from flexunet.models import (
    build_attention_unet,
    build_deeplabv3plus,
    build_efficient_unet,
    build_multires_unet,
    build_sharp_unet,
    build_swin_unet,
    build_transunet,
    build_u2net,
    build_unet3plus,
)

#: Parameters of each model as debug=fast builds it (conf/debug_model/fast_NAME.yaml), two
#: classes. The encoders of deeplabv3plus (ResNet50 up to stride 16) and efficient_unet
#: (EfficientNet-B0) keep their size: debug=fast narrows only what the builder adds.
FAST_PARAMS = {
    "attention_unet": 8_108,
    "unet3plus": 9_766,
    "multires_unet": 7_047,
    "sharp_unet": 7_822,
    "u2net": 8_552,
    "deeplabv3plus": 8_829_838,
    "efficient_unet": 4_180_637,
    "swin_unet": 8_898,
    "transunet": 11_318,
}


@pytest.mark.parametrize("name", sorted(FAST_PARAMS))
def test_debug_fast_model_builds_trains_and_reloads_safely(compose, tmp_path, name: str) -> None:
    cfg = compose([f"model={name}", "debug=fast"])
    model = instantiate(cfg.model, _convert_="all")
    assert model.output_shape == (None, 64, 64, 2)
    assert model.count_params() == FAST_PARAMS[name]
    head = model.get_layer("head")
    assert head.compute_dtype == "float32" and head.activation.__name__ == "softmax"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")  # raw pixels
    y = np.eye(2, dtype="float32")[rng.integers(0, 2, (2, 64, 64))]
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
    loss = float(model.train_on_batch(x, y))
    assert np.isfinite(loss) and loss > 0
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (2, 64, 64, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again(x, training=False)), probs, atol=1e-5
    )


@pytest.mark.parametrize(
    ("builder", "kwargs", "message"),
    [
        (build_attention_unet, {"image_width": 100, "num_layers": 4}, "multiple of 8"),
        (build_unet3plus, {"dropout_rate": 0.3, "num_layers": 5}, "dropout_rate < 0.2500"),
        (build_multires_unet, {"alpha": 0}, "model.alpha=0"),
        (build_sharp_unet, {"num_layers": 1}, "at least 2 levels"),
        (build_u2net, {"image_height": 80, "num_layers": 6}, "multiple of 32"),
        (build_deeplabv3plus, {"image_width": 72}, "multiple of 16"),
        (build_deeplabv3plus, {"encoder_weights": "/nonexistent.weights.h5"}, "not a file"),
        (build_efficient_unet, {"variant": "B9"}, "use one of B0"),
        (build_efficient_unet, {"image_width": 48}, "multiple of 32"),
        (build_swin_unet, {"image_width": 96, "image_height": 96, "depth": 2,
                           "num_heads": [1, 2], "window_size": 8}, "not divisible by its window"),
        (build_swin_unet, {"image_width": 100}, "multiple of 16"),
        (build_swin_unet, {"num_heads": [3, 4, 8]}, "not divisible by 3 heads"),
        (build_transunet, {"embed_dim": 10, "num_heads": 4}, "divisible by model.num_heads"),
        (build_transunet, {"image_width": 68}, "multiple of 8"),
    ],
)
def test_impossible_sizes_fail_before_any_tensor(monkeypatch, builder, kwargs, message) -> None:
    def no_tensors(*args, **kw):
        raise AssertionError("a tensor was built before the configuration was checked")

    monkeypatch.setattr(keras, "Input", no_tensors)
    with pytest.raises(ConfigError, match=message):
        builder(**kwargs)


def test_unknown_key_names_the_builders_keys(compose) -> None:
    from flexunet.config import check_config

    cfg = compose(["model=swin_unet", "+model.base_filters=8"])
    with pytest.raises(ConfigError, match=r"unknown key model\.base_filters .*filter_num_begin"):
        check_config(cfg)


@pytest.mark.parametrize("name", ["swin_unet", "transunet"])
def test_custom_layers_run_in_mixed_precision_with_a_float32_head(compose, name: str) -> None:
    cfg = compose([f"model={name}", "debug=fast"])
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = instantiate(cfg.model, _convert_="all")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    inner = "down0_block0" if name == "swin_unet" else "vit0_attention"
    assert model.get_layer(inner).compute_dtype == "bfloat16"
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-3)
