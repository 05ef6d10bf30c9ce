"""Epoch logs numbered as the console numbers them: metrics.csv and TensorBoard.

Keras prints ``Epoch 1/20`` but hands callbacks the 0-based index, so its CSVLogger and
TensorBoard record epoch 0 for what the console, the epoch-change images and the plots call
epoch 1. These two count from 1, like everything else a run writes.

A learning-rate callback (the plateau reducer, cosine decay) adds the epoch's learning rate to
the logs before these run. Keras' TensorBoard would read the optimizer's rate instead, which
the plateau reducer may just have cut for the next epoch; here TensorBoard records the logged
value, so the console, metrics.csv and TensorBoard show the same rate for an epoch.
"""

from __future__ import annotations

from typing import Any

import keras


class MetricsCSV(keras.callbacks.CSVLogger):
    """Keras' CSVLogger with the ``epoch`` column counted from 1."""

    def __init__(self, filename: str, separator: str = ",", append: bool = False) -> None:
        super().__init__(filename, separator=separator, append=append)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch + 1, logs)


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard with epoch steps counted from 1 and the logged learning rate."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch + 1, logs)

    def _collect_learning_rate(self, logs: dict[str, Any]) -> dict[str, Any]:
        # Keras' own method reads the optimizer after the reducer's cut; keep the epoch's.
        return logs if "learning_rate" in logs else super()._collect_learning_rate(logs)
