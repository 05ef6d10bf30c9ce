"""Resume: a run killed mid-training continues in its own directory from the last epoch."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import FAST, run_train

# 3 epochs; enough steps that the kill lands inside epoch 2. The LR reducer halves the rate
# after every epoch but the first (min_delta=10: never an improvement), which it only does
# after a resume if its counters were restored with the optimizer state.
RUN = [
    *FAST, "train.epochs=3", "train.steps_per_epoch=20",
    "train.callbacks.lr_reducer.patience=1", "+train.callbacks.lr_reducer.min_delta=10",
    "train.callbacks.early_stop.patience=5", "train.callbacks.backup.interval_s=0",
]


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "metrics.csv"
    return list(csv.DictReader(path.open(newline=""))) if path.is_file() else []


def completed_epochs(run_dir: Path) -> int:
    path = run_dir / "backup/training_metadata.json"
    try:
        return json.loads(path.read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def test_killed_run_resumes_in_place_without_duplicate_epochs(
    tmp_path: Path, data_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    args = [*RUN, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "flexunet.commands.train", *args], cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while completed_epochs(run_dir) < 1 and proc.poll() is None:
            assert time.monotonic() < deadline, "epoch 1 did not finish in time"
            time.sleep(0.1)
    finally:
        proc.kill()  # SIGKILL: no clean-up code runs
        proc.wait()
    assert completed_epochs(run_dir) == 1, "the kill came too late: epoch 2 had finished"
    assert [r["epoch"] for r in metrics_rows(run_dir)] == ["1"]
    original_config = (run_dir / ".hydra/config.yaml").read_text()

    resumed = run_train([f"resume={run_dir}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    rows = metrics_rows(run_dir)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    rates = [float(r["learning_rate"]) for r in rows]
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4])
    assert not (run_dir / "backup").exists()
    assert (run_dir / ".hydra/config.yaml").read_text() == original_config
    assert "resume:" in (run_dir / ".hydra/resumed/config.yaml").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no new run directory
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["status"] == "completed" and info["resumed"] == 1 and info["epochs"] == 3
    assert "train.callbacks.lr_reducer.patience=1" in info["overrides"]

    import keras

    import flexunet.training.losses  # noqa: F401  (registers the loss and metrics for loading)
    import flexunet.training.metrics  # noqa: F401

    model = keras.saving.load_model(run_dir / "checkpoints/last.keras")
    assert int(model.optimizer.iterations.numpy()) == 3 * 20  # optimizer state carried over

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard/train"), size_guidance={"tensors": 0})
    acc.Reload()
    assert [e.step for e in acc.Tensors("epoch_loss")] == [1, 2, 3]


def test_resume_refuses_a_finished_run(tmp_path: Path) -> None:
    from flexunet.errors import ConfigError
    from flexunet.training.callbacks import BackupAndRestore
    from flexunet.training.fit import prepare_resume

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/best.keras").write_bytes(b"trained")
    with pytest.raises(ConfigError, match="no backup to resume from"):
        prepare_resume(tmp_path, [BackupAndRestore(str(tmp_path / "backup"))])
    assert (tmp_path / "checkpoints/best.keras").read_bytes() == b"trained"


def test_resume_argv_loads_the_saved_config_into_the_same_dir(tmp_path: Path) -> None:
    from flexunet.errors import ConfigError
    from flexunet.runs.reuse import resume_argv

    assert resume_argv(["flexunet-train", "train.epochs=3"]) == ["flexunet-train", "train.epochs=3"]
    with pytest.raises(ConfigError, match="not found"):
        resume_argv(["flexunet-train", f"resume={tmp_path}"])
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra/config.yaml").write_text("resume: null\n")
    argv = resume_argv(["flexunet-train", f"resume={tmp_path}", "train.epochs=9"])
    assert argv[1:5] == ["--config-path", str(tmp_path / ".hydra"), "--config-name", "config"]
    assert f"hydra.run.dir='{tmp_path}'" in argv and "train.epochs=9" in argv
    # an option the user gives (--cfg job) stays last: Hydra takes no override after it
    argv = resume_argv(["flexunet-train", f"resume={tmp_path}", "--cfg", "job"])
    assert argv[-2:] == ["--cfg", "job"]
    with pytest.raises(ConfigError, match="-m"):
        resume_argv(["flexunet-train", "-m", f"resume={tmp_path}"])


