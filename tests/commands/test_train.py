"""End-to-end training from a composed config, config composition and strictness."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from PIL import Image

from tests.helpers import CONF_DIR, compose_config, run_train

FAST = ["debug=fast", "data.source.count=24"]


@pytest.fixture(scope="module")
def fast_training(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, dict]:
    """One debug=fast training job shared by this module: its run directory and result."""
    from flexunet.commands.train import check, train

    run_dir = tmp_path_factory.mktemp("fast_run")
    overrides = [*FAST, "train.epochs=2", "evaluate_after={split: test, tta: flips}"]
    cfg = compose_config("train", overrides, run_dir, data_dir)
    return run_dir, train(cfg, run_dir, 0, check(cfg))


@pytest.fixture(scope="module")
def fast_run(fast_training: tuple[Path, dict]) -> Path:
    return fast_training[0]


def test_train_returns_the_best_epoch_and_the_evaluation(fast_training: tuple[Path, dict]) -> None:
    result = fast_training[1]
    assert result["best_epoch"] in (1, 2)
    assert 0.0 <= result["evaluation"]["dice"] <= 1.0


def test_run_directory_has_every_artifact(fast_run: Path) -> None:
    for name in [
        "checkpoints/best.keras", "checkpoints/last.keras", "metrics.csv", "train_metrics.png",
        "train_losses.png", "model_summary.txt", "epoch_change_infer/epoch_001.png",
        "epoch_change_infer/epoch_002.png", "eval_test/evaluation.json",
        "eval_test/evaluation_per_image.csv",
    ]:
        assert (fast_run / name).is_file(), name
    rows = list(csv.DictReader((fast_run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "val_loss", "lesion_dice", "val_lesion_dice", "learning_rate"} <= set(rows[0])
    summary = (fast_run / "model_summary.txt").read_text()
    assert "Total params" in summary


def test_epoch_grid_shows_input_truth_prediction(fast_run: Path) -> None:
    grid = np.asarray(Image.open(fast_run / "epoch_change_infer/epoch_002.png"))
    # debug=fast: 2 images of 64x64, three columns with 2 px spacers.
    assert grid.shape == (64 * 2 + 2, 64 * 3 + 4, 3)


def test_tensorboard_has_scalars_and_epoch_images(fast_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def tags(folder: Path) -> dict:
        acc = EventAccumulator(str(folder), size_guidance={"tensors": 0, "images": 0})
        acc.Reload()
        return acc.Tags()

    train_tags = tags(fast_run / "tensorboard/train")
    assert "epoch_loss" in train_tags["tensors"] + train_tags["scalars"]
    image_tags = tags(fast_run / "tensorboard/epoch_change")
    assert "epoch_change_infer" in image_tags["tensors"] + image_tags["images"]


def test_best_checkpoint_reloads_safely_and_predicts_the_same(fast_run: Path) -> None:
    model = keras.saving.load_model(fast_run / "checkpoints/best.keras", safe_mode=True)
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    again = keras.saving.load_model(fast_run / "checkpoints/best.keras", safe_mode=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), again.predict(x, verbose=0), atol=1e-6)
    assert model.output_shape == (None, 64, 64, 2)


def test_second_training_into_same_dir_refuses_to_overwrite(fast_run: Path, compose) -> None:
    from flexunet.commands.train import check, train
    from flexunet.errors import ConfigError

    cfg = compose(FAST)
    before = (fast_run / "checkpoints/best.keras").read_bytes()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        train(cfg, fast_run, 0, check(cfg))
    assert (fast_run / "checkpoints/best.keras").read_bytes() == before


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [f"model={o}" for o in _options("model")]
    + [f"data={o}" for o in _options("data")]
    + [f"data/augment={o}" for o in _options("data/augment")]
    + [f"mask={o}" for o in _options("mask")]
    + [f"train={o}" for o in _options("train")]
    + [f"debug={o}" for o in _options("debug")],
)
def test_every_group_option_composes_and_instantiates(compose, override: str) -> None:
    from hydra.utils import instantiate

    from flexunet.data.pipeline import build_augment

    cfg = compose([override, "data.source.root=/nonexistent"] if override == "data=folder"
                  else [override])
    build_augment(cfg.data.augment, seed=0)
    instantiate(cfg.train.optimizer)
    instantiate(cfg.train.loss)
    for node in cfg.train.callbacks.values():
        if node is not None:
            instantiate(node)
    instantiate(cfg.data.source)
    assert cfg.model.num_classes == cfg.mask.num_classes


def test_inline_overrides_reach_the_objects(compose) -> None:
    from hydra.utils import instantiate

    cfg = compose(["model.base_filters=32", "train.optimizer.learning_rate=7e-5",
                   "train.epochs=3", "~train.callbacks.tensorboard",
                   "train.callbacks.early_stop=null"])
    assert cfg.model.base_filters == 32 and cfg.train.epochs == 3
    assert instantiate(cfg.train.optimizer).learning_rate.numpy() == pytest.approx(7e-5)
    assert "tensorboard" not in cfg.train.callbacks
    assert cfg.train.callbacks.early_stop is None


@pytest.mark.parametrize(
    "override", ["train.epochz=3", "model.base_filterz=8", "data.limt=3", "mask.tolerence=3"]
)
def test_misspelled_key_is_an_error(compose, override: str) -> None:
    with pytest.raises(ConfigCompositionException, match="not in struct|Could not override"):
        compose([override])


def test_misspelled_callback_argument_is_an_error(compose) -> None:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    cfg = compose(["+train.callbacks.lr_reducer.reduer_patience=3"])
    with pytest.raises(InstantiationException, match="reduer_patience"):
        instantiate(cfg.train.callbacks.lr_reducer)


def test_lr_reducer_patience_is_applied(compose) -> None:
    from hydra.utils import instantiate

    cfg = compose(["train.callbacks.lr_reducer.patience=7"])
    assert instantiate(cfg.train.callbacks.lr_reducer).patience == 7


def test_cli_trains_from_the_command_line(tmp_path: Path, data_dir: Path) -> None:
    import subprocess
    import sys

    run_dir = tmp_path / "cli_run"
    proc = subprocess.run(
        [sys.executable, "-m", "flexunet.commands.train", *FAST, f"paths.data_dir={data_dir}",
         f"hydra.run.dir={run_dir}", "train.epochs=2"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "checkpoints/best.keras").is_file()
    assert (run_dir / ".hydra/config.yaml").is_file()
    assert not any(p.name != "cli_run" for p in tmp_path.iterdir())  # nothing in the cwd
    # train.log has each epoch's metrics line, numbered from 1 as the console and metrics.csv
    # number them; the console has Keras' own line only
    epochs = [line for line in (run_dir / "train.log").read_text().splitlines()
              if "][INFO] - epoch " in line]
    assert [line.split(" - epoch ")[1].split(" ")[0] for line in epochs] == ["1/2", "2/2"]
    assert all("val_lesion_dice: " in line and "learning_rate: " in line for line in epochs)
    assert "Epoch 1/2" in proc.stdout and "epoch_logs" not in proc.stdout
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    dice = float(epochs[1].split("val_lesion_dice: ")[1].split(" ")[0])
    assert dice == pytest.approx(float(rows[1]["val_lesion_dice"]), abs=1e-3)


def test_logger_mlflow_records_params_epoch_metrics_and_the_best_checkpoint(
    tmp_path: Path, data_dir: Path
) -> None:
    """A real MLflow store (mlflow-skinny, local folder): read back with MLflow's client."""
    from mlflow import MlflowClient

    run_dir = tmp_path / "outputs" / "train" / "runs" / "one"
    proc = run_train(
        [*FAST, "train.epochs=2", "logger=mlflow", "model.base_filters=8", "tags=[a]",
         f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"file:{tmp_path / 'outputs' / 'mlruns'}")  # the config's default
    (run,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "runs/one"
    params = run.data.params  # the resolved config, as in TensorBoard's HParams
    assert params["model.base_filters"] == "8" and params["model.num_layers"] == "3"
    assert params["train.optimizer._target_"] == "flexunet.training.optimizers.Adam"
    assert params["data.augment"].startswith("Compose(transforms=[") and params["tags"] == "a"
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    history = client.get_metric_history(run.info.run_id, "val_lesion_dice")
    assert [m.step for m in history] == [1, 2]  # epochs from 1, as metrics.csv
    assert [m.value for m in history] == pytest.approx([float(r["val_lesion_dice"]) for r in rows])
    artifacts = client.list_artifacts(run.info.run_id, "checkpoints")
    assert [a.path for a in artifacts] == ["checkpoints/best.keras"]
    assert artifacts[0].file_size == (run_dir / "checkpoints" / "best.keras").stat().st_size


def test_logger_mlflow_keys_are_checked(compose) -> None:
    from flexunet.config import check_config
    from flexunet.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean logger.tracking_uri"):
        check_config(compose(["logger=mlflow", "+logger.tracking_ur=file:x"]))


def test_misspelled_evaluate_after_option_fails_before_training(compose, tmp_path) -> None:
    from omegaconf.errors import ConfigKeyError

    from flexunet.commands.train import check

    cfg = compose([*FAST, "evaluate_after={splt: test}"])
    with pytest.raises(ConfigKeyError, match="splt"):
        check(cfg)
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+train.epoch=3"], r"unknown key train\.epoch \(did you mean train\.epochs\?"),
        (["+model.base_filter=8"],
         r"unknown key model\.base_filter \(did you mean model\.base_filters\?"),
        (["train.batch_size=-1"], r"train\.batch_size=-1: must be at least 1"),
        (["train.epochs=0"], r"train\.epochs=0: must be at least 1"),
        (["train.steps_per_epoch=0"], r"train\.steps_per_epoch=0: must be at least 1"),
        (["data=folder", "data.source.root=/nonexistent"], "/nonexistent"),
    ],
)
def test_check_names_the_mistake_before_anything_runs(compose, overrides, message) -> None:
    from flexunet.commands.train import check
    from flexunet.errors import FlexUNetError

    base = ["debug=fast"] if "data=folder" in overrides else FAST
    with pytest.raises(FlexUNetError, match=message):
        check(compose([*base, *overrides]))


def test_check_names_an_empty_masks_folder(compose, tmp_path: Path) -> None:
    from flexunet.commands.train import check
    from flexunet.errors import DataError

    (tmp_path / "mine" / "masks").mkdir(parents=True)
    (tmp_path / "mine" / "images").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "mine" / "images" / "a.png")
    with pytest.raises(DataError, match="mine"):
        check(compose(["debug=fast", "data=folder", f"data.source.root={tmp_path / 'mine'}"]))


@pytest.mark.parametrize(
    "mistake", ["+train.epoch=3", "data.source.root=/nonexistent", "train.batch_size=-1"]
)
def test_cli_user_error_is_one_line_exit_1_and_leaves_only_the_log(
    tmp_path: Path, mistake: str
) -> None:
    folder = ["data=folder"] if "root" in mistake else []
    proc = run_train(["debug=fast", *folder, mistake], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, output[-3000:]
    key = mistake.lstrip("+").split("=")[0]
    assert key.split(".")[-1] in errors[0] or "/nonexistent" in errors[0]
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "train.log"]
