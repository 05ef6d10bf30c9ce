"""Export: each format's artifact, run by its own runtime, reproduces the Keras model."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from flexunet.errors import ConfigError, ExportError
from flexunet.inference import export as export_module
from flexunet.inference.export import FORMATS, default_class_names, export_checked, export_format
from flexunet.models import build_flexunet


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_flexunet(64, 64, base_filters=4, base_kernels=(3, 3), num_layers=3)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two images larger than the model input and one smaller (both resize branches)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (width, height) in enumerate([(120, 90), (80, 80), (40, 50)]):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _export(model: keras.Model, name: str, out: Path, images: list[Path]) -> dict:
    return export_checked(
        model, name, out, images, default_class_names(2), 1e-4, {"checkpoint": "x.keras"}
    )


@pytest.mark.parametrize("name", FORMATS)
def test_artifact_matches_keras_and_model_json_describes_it(
    model: keras.Model, images: list[Path], tmp_path: Path, name: str
) -> None:
    metadata = _export(model, name, tmp_path, images)
    assert (tmp_path / FORMATS[name].filename).exists()
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved == metadata
    assert saved["format"] == name and saved["checkpoint"] == "x.keras"
    assert saved["input"] == {"width": 64, "height": 64, "channels": 3, "dtype": "float32"}
    assert saved["classes"] == ["background", "lesion"]
    assert "INTER_AREA" in saved["preprocessing"]["resize"]
    check = saved["check"]
    assert check["passed"] and 0 <= check["max_abs_diff"] < 1e-4
    assert check["images"] == [str(p) for p in images]


def test_a_wrong_artifact_fails_and_its_difference_is_recorded(
    model: keras.Model, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = export_module.load_artifact
    monkeypatch.setattr(
        export_module, "load_artifact", lambda path, fmt: lambda b: load(path, fmt)(b) + 1e-3
    )
    with pytest.raises(ExportError, match=r"max \|difference\|.* 0\.001 > tolerance 0\.0001"):
        _export(model, "saved_model", tmp_path, images)
    check = json.loads((tmp_path / "model.json").read_text())["check"]
    assert not check["passed"] and check["max_abs_diff"] == pytest.approx(1e-3, rel=1e-2)


def test_unknown_format_and_class_name_count_are_config_errors(
    model: keras.Model, images: list[Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="use one of saved_model, onnx, litert"):
        export_format("tflite")
    with pytest.raises(ConfigError, match="1 name"):
        export_checked(model, "onnx", tmp_path, images, ["lesion"], 1e-4, {})
    assert not any(tmp_path.iterdir())


def test_missing_converter_names_the_package_and_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(export_module, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"needs ai-edge-litert .*flexunet\[export\]"):
        export_format("litert")
