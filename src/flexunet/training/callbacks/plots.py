"""TrainingPlots: loss and metric curves, redrawn every few epochs and when training ends."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import keras
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from flexunet.runs.records import read_metrics_csv


class TrainingPlots(keras.callbacks.Callback):
    """Writes ``train_losses.png`` and ``train_metrics.png`` (train vs validation curves).

    Drawn after every ``every_n_epochs`` epochs and when training ends, in a background
    thread: a drawing (~0.2 s of matplotlib) overlaps the next epoch instead of lengthening
    this one, and at most one is in flight (a due drawing waits for the previous one).
    With ``metrics_csv`` (the CSVLogger's file), the epochs already in it are loaded when
    training begins, so the plots of a resumed run cover the whole run.
    """

    def __init__(
        self, output_dir: str, metrics_csv: str | None = None, every_n_epochs: int = 1
    ) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.metrics_csv = Path(metrics_csv) if metrics_csv else None
        self.every_n_epochs = max(1, every_n_epochs)
        self.history: dict[str, list[float]] = {}
        self.epochs: list[int] = []
        self._drawn = 0  # epochs covered by the last drawing handed to the thread
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        previous = read_metrics_csv(self.metrics_csv) if self.metrics_csv else {}
        self.epochs = [int(e) for e in previous.pop("epoch", [])]
        self.history = previous
        self._drawn = len(self.epochs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs.append(epoch + 1)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if (epoch + 1) % self.every_n_epochs == 0:
            self._draw_in_background()

    def on_train_end(self, logs: dict | None = None) -> None:
        if len(self.epochs) > self._drawn:
            self._draw_in_background()
        self.flush()

    def flush(self) -> None:
        """Block until the drawing in flight is written (re-raises its error)."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def _draw_in_background(self) -> None:
        if self._pending is not None:
            self._pending.result()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="training-plots")
        epochs = list(self.epochs)
        history = {k: list(v) for k, v in self.history.items()}
        self._drawn = len(epochs)
        self._pending = self._executor.submit(self.draw, epochs, history)

    def draw(self, epochs: list[int] | None = None, history: dict | None = None) -> None:
        """Write both plots of ``epochs``/``history`` (default: the callback's own)."""
        epochs = self.epochs if epochs is None else epochs
        history = self.history if history is None else history
        names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
        losses = [k for k in names if "loss" in k]
        metrics = [k for k in names if "loss" not in k]
        for filename, keys in (("train_losses.png", losses), ("train_metrics.png", metrics)):
            fig = self.figure(keys, epochs, history)
            FigureCanvasAgg(fig).print_png(self.output_dir / filename)

    def figure(
        self, keys: list[str], epochs: list[int] | None = None, history: dict | None = None
    ) -> Figure:
        """Train (solid) and validation (dashed) curves of ``keys`` over the epochs so far.

        A plain matplotlib Figure: no pyplot state, no global backend switch.
        """
        epochs = self.epochs if epochs is None else epochs
        history = self.history if history is None else history
        fig = Figure(figsize=(7, 4.5), dpi=100)
        ax = fig.subplots()
        for key in keys:
            n = len(history[key])
            ax.plot(epochs[-n:], history[key], "-o", ms=3, label=key)
            if f"val_{key}" in history:
                val = history[f"val_{key}"]
                ax.plot(epochs[-len(val):], val, "--o", ms=3, label=f"val_{key}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
        ax.grid(alpha=0.3)
        if keys:
            ax.legend()
        fig.tight_layout()
        return fig
