"""Run ``flexunet-train`` as a subprocess, as a user would (Hydra multiruns need their own
process: Hydra's global state and TensorFlow's once-per-process settings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    import csv

    with (sweep_dir / "summary.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def sweep_dirs(cwd: Path) -> list[Path]:
    """The sweep directories a ``-m`` run from ``cwd`` created, oldest first (where the README
    says they go: ``outputs/train/multiruns/DATE``)."""
    return sorted((cwd / "outputs" / "train" / "multiruns").iterdir())
