"""What a callback may need from the trainer beyond Keras' own hooks, said by its class."""

from __future__ import annotations

from abc import ABC, abstractmethod

import keras
import numpy as np


class NeedsValidationSamples(ABC):
    """A callback that works on a few fixed validation images (given before ``fit``)."""

    @abstractmethod
    def bind_data(self, images: np.ndarray, masks: np.ndarray) -> None:
        """float32 (N, H, W, 3) images and (N, H, W) uint8 class masks at the model size."""


class WatchesCallbacks(ABC):
    """A callback that saves or restores the state of the others; it runs after them."""

    @abstractmethod
    def bind_callbacks(self, callbacks: dict[str, keras.callbacks.Callback]) -> None:
        """The job's callbacks by their ``train.callbacks`` name."""
