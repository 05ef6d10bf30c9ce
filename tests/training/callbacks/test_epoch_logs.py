"""metrics.csv and TensorBoard count epochs from 1 and agree on each epoch's learning rate."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from flexunet.training.callbacks import MetricsCSV, ReduceLROnPlateau, TensorBoard
from tests.training.callbacks.test_lr import fit_with


def tensorboard_scalars(folder: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    return {e.step: float(np.asarray(e.tensor_proto.float_val or
                                     np.frombuffer(e.tensor_proto.tensor_content, np.float32))[0])
            for e in acc.Tensors(tag)}


def test_epochs_from_one_and_the_same_learning_rate_where_the_reducer_cuts(
    tmp_path: Path,
) -> None:
    # After the first epoch the loss never improves by min_delta=1: from the end of epoch 2 on
    # the reducer halves the rate after each epoch, just before the loggers run.
    reducer = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1.0)
    logs = [MetricsCSV(str(tmp_path / "metrics.csv")), TensorBoard(str(tmp_path / "tb"))]
    record = fit_with([reducer, *logs], epochs=4)

    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    csv_rates = [float(r["learning_rate"]) for r in rows]
    np.testing.assert_allclose(csv_rates, record.used, rtol=1e-6)  # the rate each epoch ran with
    assert csv_rates[0] == csv_rates[1] > csv_rates[2] > csv_rates[3]  # the reducer did cut
    board = tensorboard_scalars(tmp_path / "tb" / "train", "epoch_learning_rate")
    assert sorted(board) == [1, 2, 3, 4]
    np.testing.assert_allclose([board[e] for e in (1, 2, 3, 4)], csv_rates, rtol=1e-6)
    assert sorted(tensorboard_scalars(tmp_path / "tb" / "train", "epoch_loss")) == [1, 2, 3, 4]
