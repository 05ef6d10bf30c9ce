"""Shared prediction: original-size probabilities, flip and d4 TTA, tiling, post-processing."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from flexunet.errors import ConfigError, DataError
from flexunet.inference.options import PredictOptions
from flexunet.inference.predictor import (
    Predictor,
    load_model,
    postprocess,
    predict_images,
    predict_probabilities,
    resolve_checkpoint,
    to_class_map,
)
from flexunet.runs.reuse import inherit_run_config
from tests.helpers import write_hydra_files

SIZE = 32  # model input: 32x32


@pytest.fixture(scope="module")
def pixel_model() -> keras.Model:
    """1x1 convolutions only: each output pixel depends on its input pixel alone, so the model
    commutes with flips and gives the same result whatever tile a pixel is predicted in."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(6, 1, activation="tanh")(x)
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _numpy_pixel_model(model: keras.Model, image: np.ndarray) -> np.ndarray:
    """The same 1x1-convolution model applied in numpy to every pixel of ``image``."""
    (k1, b1), (k2, b2) = (layer.get_weights() for layer in model.layers[2:4])
    hidden = np.tanh(image.astype(np.float64) / 255 @ k1[0, 0] + b1)
    logits = hidden @ k2[0, 0] + b2
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def _image(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_probabilities_come_back_at_the_original_size(pixel_model: keras.Model) -> None:
    probs = predict_probabilities(pixel_model, _image(80, 45))
    assert probs.shape == (45, 80, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("tta", ["flips", "d4"])
@pytest.mark.parametrize("tiled", [False, True])
def test_tta_changes_nothing_on_a_turn_and_flip_equivariant_model(
    pixel_model: keras.Model, tiled: bool, tta: str
) -> None:
    image = _image(SIZE, SIZE) if not tiled else _image(70, 50)
    plain = predict_probabilities(pixel_model, image, PredictOptions(tiled=tiled))
    views = predict_probabilities(pixel_model, image, PredictOptions(tta=tta, tiled=tiled))
    np.testing.assert_allclose(views, plain, atol=1e-6)


def _oriented_model(seed: int) -> keras.Model:
    """A 5x5 convolution with random weights: neither turn- nor flip-equivariant."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Conv2D(2, 5, padding="same", activation="softmax")(inputs / 255)
    return keras.Model(inputs, outputs)


def test_flip_tta_averages_the_four_flips() -> None:
    """On a model that is not flip-equivariant, TTA is the mean of the un-flipped predictions."""
    model = _oriented_model(4)
    image = _image(SIZE, SIZE, seed=2)
    batch = image[None].astype(np.float32)
    flips = [(), (2,), (1,), (1, 2)]
    expected = np.mean(
        [np.flip(model.predict_on_batch(np.flip(batch, a)), a)[0] for a in flips], axis=0
    )
    got = predict_probabilities(model, image, PredictOptions(tta="flips"))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, predict_probabilities(model, image), atol=1e-4)


def test_d4_tta_averages_the_eight_turns_and_flips() -> None:
    """On a model that is neither turn- nor flip-equivariant: the mean of the eight views,
    each turned and flipped back; it differs from the four flips alone."""
    model = _oriented_model(5)
    image = _image(SIZE, SIZE, seed=6)
    batch = image[None].astype(np.float32)
    views = []
    for turns in range(4):
        for axes in [(), (2,)]:
            out = model.predict_on_batch(np.flip(np.rot90(batch, turns, (1, 2)), axes))
            views.append(np.rot90(np.flip(out, axes), -turns, (1, 2))[0])
    got = predict_probabilities(model, image, PredictOptions(tta="d4"))
    np.testing.assert_allclose(got, np.mean(views, axis=0), atol=1e-6)
    assert not np.allclose(got, predict_probabilities(model, image, PredictOptions(tta="flips")),
                           atol=1e-4)


def test_d4_tta_on_a_non_square_model_is_a_config_error() -> None:
    inputs = keras.Input((16, 24, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax")(inputs))
    with pytest.raises(ConfigError, match="tta=d4.*square.*24x16.*tta=flips"):
        predict_probabilities(model, _image(30, 20), PredictOptions(tta="d4"))


@pytest.mark.parametrize("size", [(SIZE, SIZE), (20, 30)])
def test_tiled_equals_untiled_for_an_image_that_fits_one_tile(
    pixel_model: keras.Model, size: tuple[int, int]
) -> None:
    image = _image(*size, seed=1)
    untiled = predict_probabilities(pixel_model, image)
    tiled = predict_probabilities(pixel_model, image, PredictOptions(tiled=True))
    np.testing.assert_allclose(tiled, untiled, atol=1e-6)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_tiles_blend_to_the_full_resolution_prediction(
    pixel_model: keras.Model, overlap: float
) -> None:
    """With a per-pixel model, any weighted blend of overlapping tiles is the per-pixel answer:
    the weights are normalised, every pixel is covered and no tile is pasted off by one."""
    image = _image(101, 67, seed=5)
    options = PredictOptions(tiled=True, tile_overlap=overlap, batch_size=3)
    tiled = predict_probabilities(pixel_model, image, options)
    np.testing.assert_allclose(tiled, _numpy_pixel_model(pixel_model, image), atol=1e-5)


def test_tile_scale_resizes_before_tiling(pixel_model: keras.Model) -> None:
    image = _image(128, 96, seed=6)
    half = predict_probabilities(pixel_model, image, PredictOptions(tiled=True, tile_scale=0.5))
    assert half.shape == (96, 128, 2)
    np.testing.assert_allclose(half.sum(-1), 1.0, atol=1e-5)


def test_sigmoid_head_gives_background_and_lesion_channels() -> None:
    inputs = keras.Input((SIZE, SIZE, 3))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs / 255)
    model = keras.Model(inputs, outputs)
    probs = predict_probabilities(model, _image(40, 30))
    assert probs.shape == (30, 40, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)


def test_largest_component_keeps_one_component_and_fills_its_hole() -> None:
    class_map = np.zeros((12, 12), np.uint8)
    class_map[1:8, 1:8] = 1  # the lesion, 49 pixels ...
    class_map[3:5, 3:5] = 0  # ... with a 2x2 hole
    class_map[10:12, 9:12] = 1  # a small separate blob
    out = postprocess(class_map, "largest_component")
    expected = np.zeros_like(class_map)
    expected[1:8, 1:8] = 1
    np.testing.assert_array_equal(out, expected)
    assert postprocess(class_map, None) is class_map


def test_largest_component_multiclass_and_empty() -> None:
    class_map = np.zeros((9, 9), np.uint8)
    class_map[1:8, 1:8] = 2
    class_map[1:8, 1:3] = 1
    class_map[4, 5] = 0  # hole surrounded by class 2
    out = postprocess(class_map, "largest_component")
    assert out[4, 5] == 2 and np.count_nonzero(out == 1) == 14
    empty = np.zeros((5, 5), np.uint8)
    np.testing.assert_array_equal(postprocess(empty, "largest_component"), empty)


def test_to_class_map_is_the_argmax_then_postprocess() -> None:
    probs = np.zeros((4, 4, 2), np.float32)
    probs[..., 0] = 0.6
    probs[1:3, 1:3] = (0.2, 0.8)
    np.testing.assert_array_equal(to_class_map(probs), (probs[..., 1] > 0.5).astype(np.uint8))


@pytest.mark.parametrize(
    "kwargs", [{"tta": "rot90"}, {"postprocess": "opening"}, {"tile_overlap": 1.0},
               {"tile_scale": 0}, {"batch_size": 0}]
)
def test_invalid_options_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        PredictOptions(**kwargs)


def test_resolve_checkpoint_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        resolve_checkpoint(tmp_path / "missing")
    with pytest.raises(ConfigError, match="has no checkpoints/best.keras"):
        resolve_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.keras").write_bytes(b"x")
    with pytest.raises(ConfigError, match="it has last.keras"):
        resolve_checkpoint(tmp_path)
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ConfigError, match="weights.txt"):
        resolve_checkpoint(tmp_path / "weights.txt")
    # a checkpoint inside a run without .hydra is used alone
    assert resolve_checkpoint(tmp_path / "checkpoints" / "last.keras") == (
        tmp_path / "checkpoints" / "last.keras", None
    )


def test_corrupt_checkpoint_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="broken.keras"):
        load_model(path)


def test_run_config_is_inherited_and_the_command_line_still_wins(
    compose, tmp_path: Path
) -> None:
    train_cfg = compose(["debug=fast", "mask.tolerance=5"])
    run = tmp_path / "train_run"
    write_hydra_files(train_cfg, run)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.keras").write_bytes(b"")
    assert resolve_checkpoint(run / "checkpoints" / "best.keras")[1] == run

    overrides = [f"ckpt_path={run}", "data.source.split_seed=7", "mask.num_classes=2"]
    cfg = compose(overrides, config_name="evaluate")
    out = inherit_run_config(cfg, run, overrides, ("data", "mask"))
    assert out.mask.tolerance == 5  # from the run
    assert out.data.source.split_seed == 7  # from this command line
    assert out.data.source.root == train_cfg.data.source.root  # resolved in the run's context
    assert out.data.limit == 8  # debug=fast

    overrides = ["data=folder", "data.source.root=/elsewhere"]
    cfg = compose(overrides, config_name="evaluate")
    out = inherit_run_config(cfg, run, overrides, ("data", "mask"))
    assert out.data.source.root == "/elsewhere" and out.mask.tolerance == 5


def test_predict_images_reports_a_bad_image_to_on_error_or_raises(
    pixel_model: keras.Model, tmp_path: Path
) -> None:
    """infer passes on_error and goes on; eval and figure pass none and stop at the file."""
    from PIL import Image

    good, bad, last = tmp_path / "good.png", tmp_path / "bad.png", tmp_path / "last.png"
    Image.fromarray(_image(40, 30)).save(good)
    bad.write_bytes(b"")
    Image.fromarray(_image(20, 10)).save(last)
    predictor = Predictor([pixel_model], PredictOptions(), 2)
    with pytest.raises(DataError, match="bad.png: image is not a readable image"):
        list(predict_images(predictor, [good, bad, last]))
    failed: list[tuple[Path, str]] = []
    done = predict_images(
        predictor, [good, bad, last], on_error=lambda path, exc: failed.append((path, str(exc)))
    )
    assert [p.path for p in done] == [good, last]
    assert [path for path, _ in failed] == [bad]
    with pytest.raises(DataError, match="decompression bomb"):
        list(predict_images(predictor, [good], max_pixels=100))


def test_an_ensemble_predicts_the_mean_of_its_members(pixel_model: keras.Model) -> None:
    keras.utils.set_random_seed(4)
    other = keras.models.clone_model(pixel_model)  # new random weights
    image = _image(50, 40)
    options = PredictOptions(postprocess="largest_component")
    first = Predictor([pixel_model], options, 2)(image)[0]
    second = Predictor([other], options, 2)(image)[0]
    probs, class_map = Predictor([pixel_model, other], options, 2)(image)
    np.testing.assert_allclose(probs, (first + second) / 2, atol=1e-6)
    np.testing.assert_array_equal(class_map, to_class_map(probs, "largest_component"))


def test_a_sweep_directory_resolves_to_its_runs(tmp_path: Path) -> None:
    from flexunet.inference.predictor import resolve_members

    for job in ("0", "1", "2", "10"):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "config.yaml").write_text("{}\n")
        if job != "2":  # job 2 failed before its first checkpoint: left out
            (tmp_path / job / "checkpoints").mkdir()
            (tmp_path / job / "checkpoints" / "best.keras").write_bytes(b"")
    members = resolve_members(tmp_path)
    assert [run.name for _, run in members] == ["0", "1", "10"]
    listed = resolve_members(
        [str(tmp_path / "1"), str(tmp_path / "0" / "checkpoints" / "best.keras")]
    )
    assert [ckpt for ckpt, _ in listed] == [
        tmp_path / "1" / "checkpoints" / "best.keras", tmp_path / "0" / "checkpoints" / "best.keras"
    ]
    with pytest.raises(ConfigError, match="it is a sweep directory"):
        resolve_checkpoint(tmp_path)


def test_a_mixed_precision_checkpoint_predicts_in_float32(tmp_path: Path) -> None:
    from flexunet.models.flexunet import build_flexunet

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        trained = build_flexunet(image_width=32, image_height=32, num_classes=2, base_filters=4,
                                 base_kernels=(3, 3), num_layers=2, normalization=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    trained.save(tmp_path / "bf16.keras")
    loaded = load_model(tmp_path / "bf16.keras")
    assert {layer.dtype_policy.name for layer in trained._flatten_layers()} >= {"mixed_bfloat16"}
    assert {layer.dtype_policy.name for layer in loaded._flatten_layers()} == {"float32"}
    for saved, used in zip(trained.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, used)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    exact = np.asarray(loaded(x))
    assert exact.dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: the two agree to its rounding, not to float32's
    assert np.abs(np.asarray(trained(x), dtype=np.float32) - exact).max() < 0.05
