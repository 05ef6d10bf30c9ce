"""Zoo models with custom layers through the commands: ``flexunet-train -m model=...`` from the
command line, then flexunet-eval and flexunet-infer reload each run's best checkpoint (safe
mode, registered layers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from PIL import Image

from flexunet.commands.evaluate import evaluate
from flexunet.commands.infer import infer
from tests.helpers import FAST, read_summary, run_train, sweep_dirs

MODELS = ("swin_unet", "transunet")


@pytest.fixture(scope="module")
def zoo_sweep(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One multirun (one process) training each of MODELS with debug=fast."""
    cwd = tmp_path_factory.mktemp("zoo")
    proc = run_train(["-m", *FAST, f"paths.data_dir={data_dir}", f"model={','.join(MODELS)}"],
                     cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = sweep_dirs(cwd)
    return sweep_dir


def test_sweep_trains_each_model(zoo_sweep: Path) -> None:
    rows = read_summary(zoo_sweep)
    assert sorted(row["overrides"].split()[-1] for row in rows) == [f"model={m}" for m in MODELS]
    assert all(row["status"] == "completed" for row in rows), rows
    for job in (zoo_sweep / "0", zoo_sweep / "1"):
        assert (job / "checkpoints" / "best.keras").is_file()


@pytest.mark.parametrize("job", ["0", "1"])
def test_eval_and_infer_reload_the_checkpoint(
    compose, zoo_sweep: Path, data_dir: Path, tmp_path: Path, job: str
) -> None:
    run_dir = zoo_sweep / job
    cfg = compose([f"ckpt_path={run_dir}", "eval.split=valid"], config_name="evaluate")
    evaluate(cfg, tmp_path / "eval", HydraConfig.get().overrides.task)
    result = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert result["checkpoint"] == str(run_dir / "checkpoints" / "best.keras")
    assert result["count"] > 0 and 0.0 <= result["mean"]["dice"] <= 1.0

    images = tmp_path / "images"
    images.mkdir()
    sources = sorted((data_dir / "synthetic").glob("n24_*/images/*"))[:2]  # FAST's 24 pairs
    assert len(sources) == 2
    for path in sources:
        (images / path.name).symlink_to(path)
    out = tmp_path / "predictions"
    cfg = compose([f"ckpt_path={run_dir}", f"infer.input={images}", f"infer.output_dir={out}"],
                  config_name="infer")
    infer(cfg, HydraConfig.get().overrides.task)
    for path in sources:
        with Image.open(out / "masks" / f"{path.stem}.png") as mask, Image.open(path) as image:
            assert mask.size == image.size
