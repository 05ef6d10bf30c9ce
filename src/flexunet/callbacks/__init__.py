"""Keras callbacks that Keras does not ship, referenced from ``conf/train/callbacks``."""

from flexunet.callbacks.epoch_change import EpochChangeInference
from flexunet.callbacks.lr import ReduceLROnPlateau
from flexunet.callbacks.plots import TrainingPlots

__all__ = ["EpochChangeInference", "ReduceLROnPlateau", "TrainingPlots"]
