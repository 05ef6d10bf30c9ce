"""The run directory's own records, and resuming a killed run into the same directory.

``run_info.json`` describes one job (overrides, tags, status, best value, final metrics,
wall time); sweep summaries are rebuilt from these files. ``metrics.csv`` (Keras'
CSVLogger) holds one row per completed epoch and is the run's full history, also across a
resume.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path

from flexunet.errors import ConfigError

RUN_INFO = "run_info.json"
RESUMED_CONFIG_DIR = ".hydra/resumed"  # where a resumed job's Hydra configs go


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` so that a reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


def read_run_info(run_dir: Path) -> dict:
    path = run_dir / RUN_INFO
    return json.loads(path.read_text()) if path.is_file() else {}


def read_metrics_csv(path: Path) -> dict[str, list[float]]:
    """Columns of a CSVLogger file as float lists (``epoch`` included); {} if absent."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            columns.setdefault(key, []).append(float(value) if value else math.nan)
    return columns


def trim_metrics_csv(path: Path, epochs: int) -> int:
    """Keep the rows of epochs ``0..epochs-1``; returns how many later rows were dropped.

    A run killed after the CSV row of an epoch was written but before that epoch's backup
    was saved trains the epoch again on resume; its first row would otherwise appear twice.
    """
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    if not lines:
        return 0
    header, rows = lines[0], lines[1:]
    column = header.index("epoch")
    kept = [row for row in rows if int(float(row[column])) < epochs]
    if len(kept) == len(rows):
        return 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        csv.writer(f).writerows([header, *kept])
    os.replace(tmp, path)
    return len(rows) - len(kept)


def resume_argv(argv: list[str]) -> list[str]:
    """Rewrite ``flexunet-train resume=RUN_DIR [overrides]`` to continue RUN_DIR in place.

    The saved ``RUN_DIR/.hydra/config.yaml`` becomes the primary config (so the resumed job
    trains exactly what was configured), the job writes into RUN_DIR itself, and this
    invocation's Hydra files go to ``RUN_DIR/.hydra/resumed`` so the originals are kept.
    Further overrides (e.g. ``train.epochs=150``) apply on top. Other command lines are
    returned unchanged.
    """
    requests = [a for a in argv[1:] if a.startswith("resume=")]
    value = requests[-1].split("=", 1)[1] if requests else ""
    if value in ("", "null"):
        return argv
    if "-m" in argv or "--multirun" in argv:
        raise ConfigError("resume=RUN_DIR continues one run; it cannot be combined with -m")
    run_dir = Path(value).expanduser().resolve()
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ConfigError(
            f"resume={value}: {saved} not found; give the directory of a flexunet-train run"
        )
    rest = [a for a in argv[1:] if not a.startswith("resume=")]
    return [
        argv[0], "--config-path", str(saved.parent), "--config-name", "config", *rest,
        f"resume='{run_dir}'", f"hydra.run.dir='{run_dir}'",
        f"hydra.output_subdir={RESUMED_CONFIG_DIR}",
    ]
