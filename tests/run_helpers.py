"""Helpers for tests that need a training run directory (a checkpoint plus its .hydra config)."""

from __future__ import annotations

from pathlib import Path

import keras
from omegaconf import DictConfig, OmegaConf

from tests.conftest import CONF_DIR, REPO

# debug=fast without the callbacks that only slow a test down.
FAST_TRAIN = [
    "debug=fast", "data.source.count=24", "~train.callbacks.tensorboard",
    "~train.callbacks.plots", "~train.callbacks.epoch_change_infer",
    "~train.callbacks.checkpoint_last",
]


def compose_train(run_dir: Path, data_dir: Path, overrides: list[str]) -> DictConfig:
    """The train config as the CLI composes it, with Hydra's runtime pointed at ``run_dir``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from flexunet.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=[f"paths.data_dir={data_dir}", *overrides],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.runtime.cwd = str(REPO)
    HydraConfig.instance().set_config(cfg)
    GlobalHydra.instance().clear()
    return cfg


def write_hydra_files(cfg: DictConfig, run_dir: Path) -> None:
    """What Hydra writes into a run: the unresolved task config and the runtime's cwd."""
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(task, run_dir / ".hydra" / "config.yaml")
    runtime = {"cwd": cfg.hydra.runtime.cwd, "output_dir": str(run_dir)}
    OmegaConf.save({"hydra": {"runtime": runtime}}, run_dir / ".hydra" / "hydra.yaml")


def train_fast_run(run_dir: Path, data_dir: Path) -> Path:
    """A debug=fast training run with a real checkpoint and Hydra's config files."""
    from flexunet.commands.train import train

    cfg = compose_train(run_dir, data_dir, FAST_TRAIN)
    train(cfg, run_dir)
    write_hydra_files(cfg, run_dir)
    return run_dir


def fake_run(run_dir: Path, data_dir: Path, model: keras.Model) -> Path:
    """A run directory holding an untrained ``model`` as best.keras (no training: fast)."""
    cfg = compose_train(run_dir, data_dir, ["debug=fast"])
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "checkpoints" / "best.keras")
    write_hydra_files(cfg, run_dir)
    return run_dir
