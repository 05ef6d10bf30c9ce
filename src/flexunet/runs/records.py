"""The run directory's own records, and the one way the project replaces a file atomically.

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

RUN_INFO = "run_info.json"


def _umask() -> int:
    """This process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """A text file that replaces ``path`` when the block ends without an error, so a reader
    (or a kill) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline=newline) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as JSON with :func:`atomic_open`."""
    with atomic_open(path) as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")


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
    """Keep the rows of epochs ``1..epochs``; returns how many later rows were dropped.

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
    kept = [row for row in rows if int(float(row[column])) <= epochs]
    if len(kept) == len(rows):
        return 0
    with atomic_open(path, newline="") as f:
        csv.writer(f).writerows([header, *kept])
    return len(rows) - len(kept)
