"""flexunet-figure on a tiny checkpoint: the grid's layout, image choice and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from PIL import Image

from flexunet.commands.figure import make_figure
from flexunet.errors import DataError
from flexunet.evaluation.figure import HEADER_PX
from flexunet.models import build_flexunet, build_transunet
from tests.helpers import REPO, fake_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A run directory with an untrained 64x64 FlexUNet on the synthetic debug data."""
    model = build_flexunet(64, 64, base_filters=4, base_kernels=(3, 3), num_layers=3)
    return fake_run(tmp_path_factory.mktemp("figure_run"), data_dir, model)


def test_rows_of_input_truth_prediction_overlay(compose, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures" / "test.png"
    cfg = compose(
        [f"ckpt_path={run_dir}", "figure.num_images=2", "figure.cell_width=96",
         "figure.tta=flips", "figure.postprocess=largest_component", f"figure.output={out}"],
        config_name="figure",
    )
    assert make_figure(cfg, HydraConfig.get().overrides.task) == out
    with Image.open(out) as picture:
        assert picture.mode == "P"  # figure.colors: a palette keeps docs figures small
        # 4 columns of 96 px and 3 gaps; the 256x192 synthetic images give 72 px rows
        assert picture.size == (4 * 96 + 3 * 2, HEADER_PX + 2 * 72 + 2)


def test_model_comparison_has_a_row_per_model(
    compose, run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    other = build_transunet(64, 64, filter_num=(4, 8), embed_dim=8, num_mlp=8, num_heads=2,
                            num_transformer=1)
    second = fake_run(tmp_path / "transunet_run", data_dir, other)
    out = tmp_path / "compare.png"
    cfg = compose(
        [f"ckpt_path={run_dir}", f"figure.compare=[{second / 'checkpoints' / 'best.keras'}]",
         "figure.num_images=3", "figure.cell_width=64", f"figure.output={out}"],
        config_name="figure",
    )
    make_figure(cfg, HydraConfig.get().overrides.task)
    with Image.open(out) as picture:
        # 3 image columns of 64 px; rows input, truth, flexunet, transunet of 48 px each
        assert picture.size == (3 * 64 + 2 * 2, HEADER_PX + 4 * 48 + 3 * 2)


def test_named_stems_of_the_split(compose, run_dir: Path, tmp_path: Path) -> None:
    from flexunet.commands.figure import figure_pairs
    from flexunet.runs.reuse import inherit_run_config

    overrides = [f"ckpt_path={run_dir}", "figure.split=all"]
    cfg = compose(overrides, config_name="figure")
    cfg = inherit_run_config(cfg, run_dir, overrides, ("data", "mask"))
    stems = [p.stem for p in figure_pairs(cfg)]
    assert len(stems) == 4
    cfg.figure.stems = stems[2:0:-1]
    assert [p.stem for p in figure_pairs(cfg)] == stems[2:0:-1]
    cfg.figure.stems = ["no_such_image"]
    with pytest.raises(DataError, match="no_such_image"):
        figure_pairs(cfg)


def test_command_line(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "figure.png"
    done = subprocess.run(
        [sys.executable, "-m", "flexunet.commands.figure", f"ckpt_path={run_dir}",
         "figure.num_images=1",
         f"figure.output={out}", f"hydra.run.dir={tmp_path / 'job'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "flexunet.commands.figure", f"ckpt_path={run_dir}",
         "figure.split=nope",
         f"hydra.run.dir={tmp_path / 'job2'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 1 and "figure.split='nope'" in bad.stdout + bad.stderr
