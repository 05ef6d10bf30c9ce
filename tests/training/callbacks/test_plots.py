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
    plots.on_train_end()
    assert plots.epochs == list(range(1, 21))
    ax = plots.figure(["loss"]).axes[0]
    train_line, valid_line = ax.get_lines()
    assert list(train_line.get_xdata()) == list(range(1, 21))
    assert list(valid_line.get_xdata()) == list(range(1, 21))
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 20]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert (tmp_path / "train_losses.png").stat().st_size > 0


def test_drawn_every_n_epochs_in_the_background_and_when_training_ends(tmp_path: Path) -> None:
    plots = TrainingPlots(str(tmp_path), every_n_epochs=3)
    plots.on_train_begin()
    png = tmp_path / "train_losses.png"
    for epoch in range(2):
        plots.on_epoch_end(epoch, {"loss": 1.0 - epoch / 10, "val_loss": 1.0})
    plots.flush()
    assert not png.exists()  # epochs 1 and 2: not due
    plots.on_epoch_end(2, {"loss": 0.7, "val_loss": 0.9})
    plots.flush()
    first = png.stat().st_mtime_ns
    assert png.stat().st_size > 0
    plots.on_epoch_end(3, {"loss": 0.6, "val_loss": 0.8})
    plots.on_train_end()  # epoch 4 is not due, but the last epoch is always drawn
    assert png.stat().st_mtime_ns > first
    assert plots._executor is None  # the thread is gone once training ends
