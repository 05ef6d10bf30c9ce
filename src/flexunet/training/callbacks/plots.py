"""TrainingPlots: loss and metric curves redrawn after every epoch."""

from __future__ import annotations

from pathlib import Path

import keras
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from flexunet.runs.records import read_metrics_csv


class TrainingPlots(keras.callbacks.Callback):
    """Writes ``train_losses.png`` and ``train_metrics.png`` (train vs validation curves).

    With ``metrics_csv`` (the CSVLogger's file), the epochs already in it are loaded when
    training begins, so the plots of a resumed run cover the whole run.
    """

    def __init__(self, output_dir: str, metrics_csv: str | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.metrics_csv = Path(metrics_csv) if metrics_csv else None
        self.history: dict[str, list[float]] = {}
        self.epochs: list[int] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        previous = read_metrics_csv(self.metrics_csv) if self.metrics_csv else {}
        self.epochs = [int(e) for e in previous.pop("epoch", [])]
        self.history = previous

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs.append(epoch + 1)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.draw()

    def draw(self) -> None:
        names = [k for k in self.history if not k.startswith("val_") and k != "learning_rate"]
        losses = [k for k in names if "loss" in k]
        metrics = [k for k in names if "loss" not in k]
        for filename, keys in (("train_losses.png", losses), ("train_metrics.png", metrics)):
            self.figure(keys).savefig(self.output_dir / filename, dpi=100)

    def figure(self, keys: list[str]) -> Figure:
        """Train (solid) and validation (dashed) curves of ``keys`` over the epochs so far.

        A plain matplotlib Figure: no pyplot state, no global backend switch.
        """
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        for key in keys:
            n = len(self.history[key])
            ax.plot(self.epochs[-n:], self.history[key], "-o", ms=3, label=key)
            if f"val_{key}" in self.history:
                val = self.history[f"val_{key}"]
                ax.plot(self.epochs[-len(val):], val, "--o", ms=3, label=f"val_{key}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
        ax.grid(alpha=0.3)
        if keys:
            ax.legend()
        fig.tight_layout()
        return fig
