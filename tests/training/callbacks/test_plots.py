"""TrainingPlots: curves over whole epochs, counted from 1, also across a resume."""

from __future__ import annotations

from pathlib import Path

from flexunet.training.callbacks import TrainingPlots


def test_curves_tick_whole_epochs_from_one_and_continue_after_a_resume(tmp_path: Path) -> None:
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("epoch,loss,val_loss\n1,0.9,1.0\n2,0.8,0.95\n")  # a resumed run's past
    plots = TrainingPlots(str(tmp_path), metrics_csv=str(csv_path))
    plots.on_train_begin()
    for epoch in range(2, 20):  # Keras' 0-based index of epochs 3..20
        plots.on_epoch_end(epoch, {"loss": 0.5, "val_loss": 0.6})
    assert plots.epochs == list(range(1, 21))
    ax = plots.figure(["loss"]).axes[0]
    train_line, valid_line = ax.get_lines()
    assert list(train_line.get_xdata()) == list(range(1, 21))
    assert list(valid_line.get_xdata()) == list(range(1, 21))
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 20]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert (tmp_path / "train_losses.png").stat().st_size > 0
