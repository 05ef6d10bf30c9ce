"""The run directory's records: metrics.csv trimming and the one atomic write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_trim_metrics_csv_drops_epochs_trained_again(tmp_path: Path) -> None:
    from flexunet.runs.records import read_metrics_csv, trim_metrics_csv

    path = tmp_path / "metrics.csv"
    path.write_text("epoch,loss\n1,0.9\n2,0.8\n3,0.7\n")
    assert trim_metrics_csv(path, 2) == 1
    assert read_metrics_csv(path) == {"epoch": [1.0, 2.0], "loss": [0.9, 0.8]}
    assert trim_metrics_csv(path, 2) == 0


def test_atomic_open_replaces_whole_with_the_usual_mode_and_leaves_nothing_on_error(
    tmp_path: Path,
) -> None:
    from flexunet.runs.records import atomic_open

    path = tmp_path / "run_info.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    with atomic_open(path) as f:
        f.write("new")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.read_text() == "new" and path.stat().st_mode & 0o777 == 0o666 & ~umask
