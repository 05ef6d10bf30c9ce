"""Multiruns: per-job run directories, summary.csv, TensorBoard HParams, failures, launchers,
Optuna; plus the pure helpers behind them."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from flexunet.runs.job import failure_value
from tests.helpers import FAST, read_summary, run_train, sweep_dirs


def hparams_data(folder: Path) -> list:
    """The HParams plugin records (experiment or session start) in ``folder``'s event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    records = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
                    content = value.metadata.plugin_data.content
                    records.append(plugin_data_pb2.HParamsPluginData.FromString(content))
    return records


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """A real 2x2 multirun with the basic launcher, 4 jobs in one process, run as the README
    shows it (no hydra.sweep.dir): the process and the directory it ran from."""
    cwd = tmp_path_factory.mktemp("grid")
    proc = run_train(
        ["-m", *FAST, f"paths.data_dir={data_dir}",
         "model.base_filters=4,8", "train.optimizer.learning_rate=1e-4,7e-5"],
        cwd=cwd,
    )
    return proc, cwd


@pytest.fixture(scope="module")
def grid_sweep(grid_run) -> Path:
    return sweep_dirs(grid_run[1])[0]


def test_grid_sweep_lands_in_one_dated_sweep_dir_without_callback_errors(grid_run) -> None:
    proc, cwd = grid_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on_multirun_start" not in proc.stderr and "Traceback" not in proc.stderr
    (sweep_dir,) = sweep_dirs(cwd)
    assert sweep_dir.name.startswith(datetime.now().strftime("%Y-%m-%d_"))
    assert sorted(p.name for p in cwd.iterdir()) == ["outputs"]  # nothing else in the cwd


def test_grid_sweep_writes_one_complete_run_dir_per_job(grid_sweep: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    for job in range(4):
        run_dir = grid_sweep / str(job)
        for name in [".hydra/config.yaml", "checkpoints/best.keras", "metrics.csv",
                     "run_info.json", "train_losses.png"]:
            assert (run_dir / name).is_file(), f"{job}/{name}"
        assert not (run_dir / "backup").exists()  # deleted when training ends normally
        # written through a temporary file, with the mode any other file of the run gets
        mode = (run_dir / "run_info.json").stat().st_mode & 0o777
        assert mode == (run_dir / "metrics.csv").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in grid_sweep.iterdir() if p.name.startswith(".")) == []
    overrides = (grid_sweep / "3/.hydra/overrides.yaml").read_text()
    assert "model.base_filters=8" in overrides and "learning_rate=7e-05" in overrides


def test_grid_sweep_summary_has_a_row_per_job(grid_sweep: Path) -> None:
    rows = read_summary(grid_sweep)
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"]
    assert {r["status"] for r in rows} == {"completed"}
    assert "model.base_filters=8 train.optimizer.learning_rate=7e-05" in rows[3]["overrides"]
    for row in rows:
        assert row["best_epoch"] == "1" and 0.0 <= float(row["best_value"]) <= 1.0
        for column in ["final_loss", "final_val_loss", "final_lesion_dice",
                       "final_val_lesion_dice", "wall_time_s"]:
            assert float(row[column]) >= 0.0, column
    rss = [float(r["rss_mib"]) for r in rows]
    print(f"process RSS after jobs 1-4: {rss} MiB")
    assert rss[3] - rss[0] < 400  # memory is released between in-process jobs


def test_grid_sweep_has_a_tensorboard_hparams_view(grid_sweep: Path) -> None:
    (experiment,) = hparams_data(grid_sweep)
    names = [h.name for h in experiment.experiment.hparam_infos]
    assert names == ["model.base_filters", "train.optimizer.learning_rate"]
    metrics = {(m.name.group, m.name.tag) for m in experiment.experiment.metric_infos}
    assert {("validation", "epoch_lesion_dice"), ("", "best_val_lesion_dice")} <= metrics
    for job, (filters, lr) in enumerate([(4, 1e-4), (4, 7e-5), (8, 1e-4), (8, 7e-5)]):
        (session,) = hparams_data(grid_sweep / str(job) / "tensorboard")
        hparams = session.session_start_info.hparams
        assert hparams["model.base_filters"].number_value == filters
        assert hparams["train.optimizer.learning_rate"].number_value == pytest.approx(lr)
        assert hparams["tags"].string_value == "debug"
        assert hparams["model.num_layers"].number_value == 3  # resolved: debug=fast's value
        assert hparams["data.augment"].string_value.startswith("Compose(transforms=[")
        assert list((grid_sweep / str(job) / "tensorboard/validation").glob("events.*"))


def test_joblib_sweep_records_a_failed_job_and_completes_the_other(
    tmp_path: Path, data_dir: Path
) -> None:
    proc = run_train(
        ["-m", *FAST, f"paths.data_dir={data_dir}",
         "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
         "model.base_filters=0,4"],  # job 0 fails when its model is built
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = sweep_dirs(tmp_path)
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    failed, completed = read_summary(sweep_dir)
    assert failed["status"] == "failed" and "base_filters" in failed["error"]
    assert completed["status"] == "completed" and float(completed["best_value"]) >= 0.0
    info = json.loads((sweep_dir / "0/run_info.json").read_text())
    assert "Traceback" in info["traceback"]
    assert "job 0 failed" in (sweep_dir / "0/train.log").read_text()
    assert (sweep_dir / "1/checkpoints/best.keras").is_file()


def test_optuna_study_in_sqlite_resumes_across_invocations(
    tmp_path: Path, data_dir: Path
) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    common = [
        "-m", "hparams_search=optuna", *FAST, f"paths.data_dir={data_dir}",
        f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=test_study",
        "hydra.sweeper.n_trials=1",
    ]
    # The second invocation adds a trial to the same study; that trial crashes (no filters)
    # and reports the sentinel value instead of ending the study.
    for extra in ([], ["model.base_filters=0"]):
        proc = run_train([*common, *extra], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "on_multirun_start" not in proc.stderr  # the sweep callback raised nothing
    first_dir, second_dir = sweep_dirs(tmp_path)  # each invocation: a new sweep directory
    for sweep_dir in (first_dir, second_dir):
        assert (sweep_dir / "optimization_results.yaml").is_file()
    study = optuna.load_study(study_name="test_study", storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    first, second = study.get_trials()
    assert first.state == second.state == optuna.trial.TrialState.COMPLETE
    assert set(first.params) == {
        "train.optimizer.learning_rate", "model.base_filters", "model.dropout_rate",
        "model.base_kernels",
    }
    (row,) = read_summary(first_dir)
    assert row["status"] == "completed" and first.value == pytest.approx(float(row["best_value"]))
    (row,) = read_summary(second_dir)
    assert row["status"] == "failed" and second.value == failure_value("max")
    assert study.best_trial.number == first.number


# --- helpers -------------------------------------------------------------------------------


def test_swept_keys_come_from_sweep_overrides_and_sweeper_params() -> None:
    from flexunet.runs.sweeps import swept_keys

    keys = swept_keys(
        ["debug=fast", "model.base_filters=16,32", "train.epochs=3", "seed=range(1,3)"],
        {"train.optimizer.learning_rate": "tag(log, interval(1e-5, 1e-3))"},
    )
    assert keys == ["model.base_filters", "seed", "train.optimizer.learning_rate"]


def test_job_hparams_are_the_resolved_config_and_the_overrides(compose) -> None:
    from flexunet.runs.sweeps import job_hparams

    overrides = ["model.base_filters=16", "model.base_kernels=[3,3]", "data/augment=flips",
                 "~train.callbacks.tensorboard"]
    cfg = compose(overrides)
    hparams = job_hparams(cfg, overrides, ["a", "b"])
    # overrides as given (a sweep's keys), the tags
    assert hparams["model.base_filters"] == 16 and hparams["data/augment"] == "flips"
    assert hparams["model.base_kernels"] == "[3, 3]" and hparams["tags"] == "a,b"
    # every resolved value of model, optimizer, loss and data, whatever the command line said
    assert hparams["model.num_layers"] == cfg.model.num_layers
    assert hparams["train.optimizer._target_"] == "flexunet.training.optimizers.Adam"
    assert hparams["train.optimizer.learning_rate"] == cfg.train.optimizer.learning_rate
    assert hparams["train.loss._target_"] == cfg.train.loss._target_
    assert hparams["train.batch_size"] == 4 and hparams["train.epochs"] == 20
    assert hparams["data.source.root"] == cfg.data.source.root  # interpolation resolved
    assert "${" not in hparams["data.source.root"]
    assert hparams["data.augment"] == (
        "Compose(transforms=[HorizontalFlip(p=0.5), VerticalFlip(p=0.5), RandomRotate90(p=0.5)])"
    )
    assert all(isinstance(v, bool | int | float | str) for v in hparams.values())


def test_summary_is_rebuilt_from_every_job_record(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from flexunet.runs.records import write_json_atomic
    from flexunet.runs.sweeps import rebuild_summary

    def finish(job: int) -> None:
        (tmp_path / str(job)).mkdir()
        write_json_atomic(tmp_path / str(job) / "run_info.json", {
            "job": job, "status": "completed", "overrides": [f"seed={job}"],
            "final": {"loss": 0.5}, "best_value": 0.5,
        })
        rebuild_summary(tmp_path)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(finish, range(12)))
    rows = read_summary(tmp_path)
    assert [int(r["job"]) for r in rows] == list(range(12))
    assert rows[5]["overrides"] == "seed=5" and rows[5]["final_loss"] == "0.5"


