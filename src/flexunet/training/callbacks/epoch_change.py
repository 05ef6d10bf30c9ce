"""EpochChangeInference: watch the predictions on a few fixed images change epoch by epoch."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from flexunet.inference.render import class_colors, prediction_grid
from flexunet.training.callbacks.base import NeedsValidationSamples
from flexunet.training.callbacks.events import EventWriter


class EpochChangeInference(NeedsValidationSamples, keras.callbacks.Callback):
    """After the first epoch, every ``every_n_epochs``-th and the last, predict ``num_images``
    fixed validation images.

    Saves one grid per epoch (rows: images; columns: input, ground truth, prediction) as
    ``output_dir/epoch_NNN.png`` and logs the same grid to TensorBoard under ``log_dir``.
    The trainer hands over the images with :meth:`bind_data` before ``fit``.
    """

    def __init__(
        self,
        output_dir: str,
        log_dir: str | None = None,
        num_images: int = 4,
        every_n_epochs: int = 1,
    ) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.log_dir = log_dir
        self.num_images = num_images
        self.every_n_epochs = max(1, every_n_epochs)
        self.images: np.ndarray | None = None
        self.masks: np.ndarray | None = None
        self._writer: EventWriter | None = None
        self._last: int | None = None  # the latest finished epoch (0-based) not yet shown

    def bind_data(self, images: np.ndarray, masks: np.ndarray) -> None:
        """Fixed inputs (N, H, W, 3) float 0-255 and class-index masks (N, H, W)."""
        self.images = images[: self.num_images]
        self.masks = masks[: self.num_images]

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.log_dir and self._writer is None:
            self._writer = EventWriter(self.log_dir)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._last = epoch
        if epoch == 0 or (epoch + 1) % self.every_n_epochs == 0:
            self.show(epoch)

    def show(self, epoch: int) -> None:
        """Predict the fixed images with the current weights; save and log them as ``epoch``."""
        self._last = None
        if self.images is None:
            return
        # one batch: predict_on_batch skips predict()'s per-call set-up (docs/performance.md)
        probs = np.asarray(self.model.predict_on_batch(self.images))
        pred = (probs[..., 0] > 0.5).astype(np.uint8) if probs.shape[-1] == 1 else probs.argmax(-1)
        colors = class_colors(max(2, probs.shape[-1]))
        grid = prediction_grid(self.images, self.masks, pred, colors)
        from PIL import Image

        Image.fromarray(grid).save(self.output_dir / f"epoch_{epoch + 1:03d}.png")
        if self._writer is not None:
            self._writer.image("epoch_change_infer", grid, step=epoch + 1)
            self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._last is not None:  # the last epoch (also one ended early) is always shown
            self.show(self._last)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
