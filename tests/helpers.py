"""Test helpers: composing a command's config, training run directories, running commands.

Commands that start Hydra multiruns run as subprocesses, as a user would run them (Hydra's
global state and TensorFlow's once-per-process settings)."""

from __future__ import annotations

import csv
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    import keras

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"  # sample data (tests marked shared_data)

# debug=fast without the callbacks that only slow a test down.
FAST_TRAIN = [
    "debug=fast", "data.source.count=24", "~train.callbacks.tensorboard",
    "~train.callbacks.plots", "~train.callbacks.epoch_change_infer",
    "~train.callbacks.checkpoint_last",
]


def compose_config(
    config_name: str, overrides: list[str], run_dir: Path, data_dir: Path | None = None
) -> DictConfig:
    """A primary config (train, evaluate, infer, ...) as its command composes it, with Hydra's
    runtime pointed at ``run_dir`` (``${hydra:...}`` and ``paths.run_dir`` resolve)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from flexunet.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    data = [f"paths.data_dir={data_dir}"] if data_dir is not None else []
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name, overrides=[f"hydra.run.dir={run_dir}", *data, *overrides],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.runtime.cwd = str(REPO)
    HydraConfig.instance().set_config(cfg)
    GlobalHydra.instance().clear()
    return cfg


def compose_train(run_dir: Path, data_dir: Path, overrides: list[str]) -> DictConfig:
    """The train config of a run in ``run_dir``."""
    return compose_config("train", overrides, run_dir, data_dir)


def write_hydra_files(cfg: DictConfig, run_dir: Path) -> None:
    """What Hydra writes into a run: the unresolved task config and the runtime's cwd."""
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(task, run_dir / ".hydra" / "config.yaml")
    runtime = {"cwd": cfg.hydra.runtime.cwd, "output_dir": str(run_dir)}
    OmegaConf.save({"hydra": {"runtime": runtime}}, run_dir / ".hydra" / "hydra.yaml")


def train_fast_run(run_dir: Path, data_dir: Path) -> Path:
    """A debug=fast training run with a real checkpoint and Hydra's config files."""
    from flexunet.commands.train import check, train

    cfg = compose_train(run_dir, data_dir, FAST_TRAIN)
    train(cfg, run_dir, 0, check(cfg))
    write_hydra_files(cfg, run_dir)
    return run_dir


def fake_run(run_dir: Path, data_dir: Path, model: keras.Model) -> Path:
    """A run directory holding an untrained ``model`` as best.keras (no training: fast)."""
    cfg = compose_train(run_dir, data_dir, ["debug=fast"])
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "checkpoints" / "best.keras")
    write_hydra_files(cfg, run_dir)
    return run_dir


# A tiny synthetic set and a tiny model: one job costs a few seconds after TF's start.
FAST = [
    "debug=fast", "data.source.count=24", "train.verbose=0", "~train.callbacks.epoch_change_infer",
]


def run_train(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flexunet.commands.train", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
    )


def read_summary(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def sweep_dirs(cwd: Path) -> list[Path]:
    """The sweep directories a ``-m`` run from ``cwd`` created, oldest first (where the README
    says they go: ``outputs/train/multiruns/DATE``)."""
    return sorted((cwd / "outputs" / "train" / "multiruns").iterdir())


def png_bomb(path: Path, width: int, height: int) -> None:
    """A valid 1-bit PNG of width x height zeros: tiny on disk, huge once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    row = bytes(1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def rendered_images(page: Path, tmp_path: Path) -> tuple[int, int]:
    """(images decoded, images on the page) of an HTML report opened in headless Chromium, as
    the page's own load handler counts them (``images shown: N of M``)."""
    chromium = shutil.which("chromium")
    if chromium is None:  # a failure, not a skip: the report's rendering would go unchecked
        pytest.fail(
            "chromium not found, so the HTML report's rendering cannot be checked: "
            "apt-get install -y chromium (.ci/run installs it when it is missing)",
            pytrace=False,
        )
    proc = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'id="shown">(\d+) of (\d+)<', proc.stdout)
    assert found, f"no image count in Chromium's DOM: {proc.stdout[-2000:]}"
    return int(found[1]), int(found[2])
