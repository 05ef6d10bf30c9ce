"""flexunet-export: each format from a run directory, the run's data, safety, exit status 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from PIL import Image

from flexunet.commands.export import export
from flexunet.errors import ConfigError
from flexunet.inference.export import FORMATS
from flexunet.models import build_flexunet
from flexunet.runs.reuse import load_run_config
from tests.helpers import REPO, fake_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A run directory with an untrained 64x64 FlexUNet: the check needs no trained weights."""
    model = build_flexunet(64, 64, base_filters=4, base_kernels=(3, 3), num_layers=3)
    return fake_run(tmp_path_factory.mktemp("export_run"), data_dir, model)


def _export(compose, overrides: list[str]) -> dict:
    cfg = compose(overrides, config_name="export")
    return export(cfg, HydraConfig.get().overrides.task)


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_is_written_into_the_run_dir_and_checked_on_the_runs_test_split(
    compose, run_dir: Path, tmp_path: Path, name: str
) -> None:
    result = _export(compose, [f"ckpt_path={run_dir}", f"export.format={name}"])
    out = tmp_path / "run"  # paths.run_dir: this job's directory
    assert (out / FORMATS[name].filename).exists()
    saved = json.loads((out / "model.json").read_text())
    assert saved == result
    assert saved["checkpoint"] == str(run_dir / "checkpoints" / "best.keras")
    assert (saved["input"]["width"], saved["input"]["height"]) == (64, 64)
    assert saved["classes"] == ["background", "lesion"]
    assert saved["mask_rgb_map"] == {"0,0,0": 0, "255,255,255": 1}
    assert saved["check"]["passed"] and saved["check"]["max_abs_diff"] < 1e-4
    source = instantiate(load_run_config(run_dir).data.source, _convert_="all")
    assert saved["check"]["images"] == [str(p.image) for p in source.pairs("test")[:4]]


def test_images_folder_class_names_and_a_refused_output_dir(
    compose, run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "keep.txt").write_text("a user's file")
    overrides = [f"ckpt_path={run_dir / 'checkpoints' / 'best.keras'}", f"export.output_dir={out}"]
    with pytest.raises(ConfigError, match="not empty.*export.overwrite=true"):
        _export(compose, overrides)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    images = tmp_path / "images"
    images.mkdir()
    for name, size in (("a.png", (90, 70)), ("b.jpg", (30, 40))):
        Image.new("RGB", size, (200, 120, 90)).save(images / name)
    result = _export(compose, [
        *overrides, "export.overwrite=true", f"export.images={images}",
        "export.class_names=[skin,naevus]",
    ])
    assert result["classes"] == ["skin", "naevus"]
    assert result["check"]["images"] == [str(images / "a.png"), str(images / "b.jpg")]
    assert (out / "keep.txt").read_text() == "a user's file" and (out / "saved_model").is_dir()


def test_cli_over_tolerance_is_one_line_exit_1_with_the_difference_recorded(
    run_dir: Path, tmp_path: Path
) -> None:
    job = tmp_path / "job"
    proc = subprocess.run(
        [sys.executable, "-m", "flexunet.commands.export", f"ckpt_path={run_dir}",
         "export.format=onnx", "export.tolerance=0", "export.num_images=1",
         f"hydra.run.dir={job}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "> tolerance 0" in errors[0], output[-3000:]
    assert "max |difference| from Keras" in output  # printed either way
    check = json.loads((job / "model.json").read_text())["check"]
    assert not check["passed"] and check["max_abs_diff"] > 0
