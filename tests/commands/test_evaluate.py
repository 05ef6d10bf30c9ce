"""flexunet-eval on a debug=fast checkpoint: report files, original-size scoring, run config."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from flexunet.commands.evaluate import evaluate, evaluate_run
from flexunet.errors import ConfigError
from flexunet.models import build_flexunet
from tests.helpers import (
    SHARED_DATA,
    compose_train,
    fake_run,
    rendered_images,
    train_fast_run,
)

KEYS = {"dice", "iou", "threshold_jaccard", "accuracy", "sensitivity", "specificity"}


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One debug=fast training (64x64 model on 256x192 synthetic images) for this module."""
    return train_fast_run(tmp_path_factory.mktemp("fast_run"), data_dir)


def _evaluate(compose, overrides: list[str], out: Path) -> tuple[dict, list[dict]]:
    cfg = compose(overrides, config_name="evaluate")
    evaluate(cfg, out, HydraConfig.get().overrides.task)
    result = json.loads((out / "evaluation.json").read_text())
    rows = list(csv.DictReader((out / "evaluation_per_image.csv").open()))
    return result, rows


def test_run_directory_is_evaluated_at_the_original_size(
    compose, fast_run: Path, tmp_path: Path
) -> None:
    result, rows = _evaluate(compose, [f"ckpt_path={fast_run}"], tmp_path)
    assert result["count"] == len(rows) == 2  # the test split of 24 images; no training limit
    assert set(result["mean"]) >= KEYS | {"dice_coef_multiclass"}
    assert set(result["pooled"]) == {"dice", "iou"}
    assert result["checkpoint"] == str(fast_run / "checkpoints" / "best.keras")
    # data came from the training run: its synthetic source, test split
    assert result["data"]["split"] == "test"
    assert result["data"]["source"]["_target_"].endswith("SyntheticSource")
    assert set(rows[0]) >= KEYS | {"stem", "image", "mask", "width", "height"}
    for row in rows:
        with Image.open(row["mask"]) as mask:
            assert (int(row["width"]), int(row["height"])) == mask.size == (256, 192)
        assert 0.0 <= float(row["dice"]) <= 1.0
    assert result["mean"]["dice"] == pytest.approx(np.mean([float(r["dice"]) for r in rows]))


@pytest.mark.shared_data
def test_folder_of_real_images_with_every_option(
    compose, fast_run: Path, tmp_path: Path
) -> None:
    """``eval.split=all`` over HAM10000 palette masks, 600x450, with TTA, tiles, postprocess."""
    result, rows = _evaluate(
        compose,
        [
            f"ckpt_path={fast_run / 'checkpoints' / 'best.keras'}", "data=folder",
            f"data.source.root={SHARED_DATA / 'ham10000-mini'}", "eval.split=all",
            "eval.tta=flips", "eval.postprocess=largest_component", "eval.tiled=true",
            "eval.tile_scale=0.2",
        ],
        tmp_path,
    )
    assert result["count"] == 6 and result["data"]["split"] == "all"
    assert {(r["width"], r["height"]) for r in rows} == {("600", "450")}
    assert result["options"]["tta"] == "flips" and result["options"]["tiled"] is True


def test_report_shows_the_worst_images_and_renders_in_chromium(
    compose, fast_run: Path, tmp_path: Path
) -> None:
    """report.html: metrics table, Dice histogram and the 3 worst of the valid split's images,
    worst first, every image decoded by a real browser."""
    _, rows = _evaluate(
        compose, [f"ckpt_path={fast_run}", "eval.split=valid", "eval.report_worst=3"], tmp_path
    )
    page = (tmp_path / "report.html").read_text()
    assert len(rows) > 3 and "threshold_jaccard" in page and "ground truth" in page
    worst = sorted(rows, key=lambda r: float(r["dice"]))[:3]
    captions = re.findall(r"<figcaption>(\S+): Dice ([0-9.]+)</figcaption>", page)
    assert [stem for stem, _ in captions] == [r["stem"] for r in worst]
    assert [float(d) for _, d in captions] == [round(float(r["dice"]), 3) for r in worst]
    assert rendered_images(tmp_path / "report.html", tmp_path) == (4, 4)  # histogram + 3


def test_missing_checkpoint_and_bad_split_are_config_errors(
    compose, fast_run: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        _evaluate(compose, [f"ckpt_path={tmp_path / 'nope.keras'}"], tmp_path)
    with pytest.raises(ConfigError, match="eval.split='tset'"):
        _evaluate(compose, [f"ckpt_path={fast_run}", "eval.split=tset"], tmp_path)


def test_cli_writes_the_report_into_hydra_run_dir(fast_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval_run"
    proc = subprocess.run(
        [sys.executable, "-m", "flexunet.commands.evaluate", f"ckpt_path={fast_run}",
         "data.limit=2", "eval.split=valid", f"hydra.run.dir={out}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "threshold_jaccard" in proc.stdout
    result = json.loads((out / "evaluation.json").read_text())
    assert result["count"] == 2 and result["data"]["split"] == "valid"
    assert (out / "evaluation_per_image.csv").is_file() and (out / ".hydra").is_dir()
    assert (out / "report.html").is_file()


def test_scores_the_runs_split_with_the_options(tmp_path: Path, data_dir: Path) -> None:
    model = build_flexunet(64, 64, base_filters=4, base_kernels=(3, 3), num_layers=3)
    run_dir = fake_run(tmp_path / "run", data_dir, model)
    cfg = compose_train(run_dir, data_dir, ["debug=fast"])  # data.limit: 8 pairs per split
    options = {"split": "test", "tta": "flips", "postprocess": "largest_component"}
    cfg = OmegaConf.merge(cfg, {"evaluate_after": options})
    result = evaluate_run(cfg, run_dir)
    report = json.loads((run_dir / "eval_test" / "evaluation.json").read_text())
    assert report["mean"] == result["mean"]
    assert report["checkpoint"] == str(run_dir / "checkpoints" / "best.keras")
    assert {k: report["options"][k] for k in options} == options
    source = instantiate(cfg.data.source, _convert_="all")
    assert report["data"]["limit"] is None
    assert report["count"] == len(source.pairs("test"))


# --------------------------------------------------------------------------- ensembles


@pytest.fixture(scope="module")
def fold_sweep(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Two debug=fast folds trained as one sweep, as a user runs it: ``-m
    data.source.folds=2 data.source.fold=0,1`` with evaluate_after (flip TTA)."""
    from tests.helpers import FAST, run_train, sweep_dirs

    cwd = tmp_path_factory.mktemp("folds")
    proc = run_train(
        ["-m", *FAST, f"paths.data_dir={data_dir}", "data.source.folds=2",
         "data.source.fold=0,1", "evaluate_after={split: test, tta: flips}"],
        cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [sweep] = sweep_dirs(cwd)
    return sweep


def test_a_fold_sweep_ends_with_its_ensemble_scored(fold_sweep: Path) -> None:
    members = [str(fold_sweep.resolve() / job / "checkpoints" / "best.keras") for job in "01"]
    result = json.loads((fold_sweep / "eval_test" / "evaluation.json").read_text())
    assert result["members"] == members and result["checkpoint"] is None
    assert result["options"]["tta"] == "flips"
    valid = [
        json.loads((fold_sweep / job / "eval_test" / "evaluation.json").read_text())["count"]
        for job in "01"
    ]
    assert valid == [result["count"]] * 2  # the folds share one test split
    assert (fold_sweep / "eval_test" / "worst.png").is_file()


def test_a_sweep_directory_and_a_list_of_runs_are_the_same_ensemble(
    compose, fold_sweep: Path, tmp_path: Path
) -> None:
    runs = [fold_sweep / "0", fold_sweep / "1"]
    by_sweep, rows = _evaluate(compose, [f"ckpt_path={fold_sweep}"], tmp_path / "sweep")
    by_list, _ = _evaluate(compose, [f"ckpt_path=[{runs[0]},{runs[1]}]"], tmp_path / "list")
    single, _ = _evaluate(compose, [f"ckpt_path={runs[0]}"], tmp_path / "single")
    expected = [str(run / "checkpoints" / "best.keras") for run in runs]
    assert by_sweep["members"] == by_list["members"] == expected
    assert by_sweep["mean"] == by_list["mean"]
    assert single["members"] == expected[:1] and single["checkpoint"] == expected[0]
    assert single["mean"]["dice_coef_multiclass"] != by_sweep["mean"]["dice_coef_multiclass"]
    # the runs recorded tta=flips (evaluate_after): it applies unless the command line says
    assert by_sweep["options"]["tta"] == "flips"
    plain, _ = _evaluate(compose, [f"ckpt_path={fold_sweep}", "eval.tta=null"], tmp_path / "p")
    assert plain["options"]["tta"] is None and plain["mean"] != by_sweep["mean"]
    assert len(rows) == by_sweep["count"]


def test_a_mixture_is_scored_per_source_with_its_worst_images(
    compose, fast_run: Path, tmp_path: Path, data_dir: Path
) -> None:
    synthetic = next((data_dir / "synthetic").iterdir())  # the fast run's generated images
    for name, stems in (("a", range(0, 5)), ("b", range(5, 8))):
        for sub in ("images", "masks"):
            (tmp_path / name / sub).mkdir(parents=True)
            for i in stems:
                found = sorted((synthetic / sub).iterdir())[i]
                (tmp_path / name / sub / found.name).symlink_to(found)
    # the shared datasets out, two folders in, as a user adds and removes sources
    result, rows = _evaluate(
        compose,
        [f"ckpt_path={fast_run}", "data=mixture", "~data.source.sources.ph2",
         "~data.source.sources.isic2017", "~data.source.sources.ham10000",
         f"+data.source.sources.a={{root: {tmp_path / 'a'}}}",
         f"+data.source.sources.b={{root: {tmp_path / 'b'}, weight: 2}}",
         "eval.split=all", "eval.report_worst=2"],
        tmp_path / "eval",
    )
    assert {k: v["count"] for k, v in result["per_source"].items()} == {"a": 5, "b": 3}
    for name in ("a", "b"):
        dice = sorted(float(r["dice"]) for r in rows if r["source"] == name)
        assert result["per_source"][name]["mean"]["dice"] == pytest.approx(np.mean(dice))
        assert [w["dice"] for w in result["worst"][name]] == pytest.approx(dice[:2])
    worst = list(csv.DictReader((tmp_path / "eval" / "worst.csv").open()))
    assert [(r["source"], r["rank"]) for r in worst] == [("a", "1"), ("a", "2"), ("b", "1"),
                                                         ("b", "2")]
    with Image.open(tmp_path / "eval" / "worst.png") as figure:
        assert figure.height > 8 * 100  # eight rows of 256-pixel-wide thumbnails
    page = (tmp_path / "eval" / "report.html").read_text()
    assert "Per source" in page and "a: the 2 worst" in page
