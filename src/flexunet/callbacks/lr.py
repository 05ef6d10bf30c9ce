"""A learning-rate reducer whose arguments are all checked."""

from __future__ import annotations

import keras


class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau without ``**kwargs``.

    Keras' version accepts and ignores unknown keyword arguments, so a misspelled
    ``patience`` silently falls back to the default (the predecessor's LR reducer never ran
    for that reason). Here a misspelled argument is a TypeError. The current learning rate is
    added to the epoch logs, so CSV and TensorBoard record it.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.5,
        patience: int = 4,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(
            monitor=monitor, factor=factor, patience=patience, verbose=verbose, mode=mode,
            min_delta=min_delta, cooldown=cooldown, min_lr=min_lr,
        )
