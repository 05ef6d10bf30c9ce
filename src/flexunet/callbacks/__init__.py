"""Keras callbacks that Keras does not ship, referenced from ``conf/train/callbacks``."""

from flexunet.callbacks.backup import BackupAndRestore
from flexunet.callbacks.epoch_change import EpochChangeInference
from flexunet.callbacks.lr import CosineDecay, ReduceLROnPlateau
from flexunet.callbacks.plots import TrainingPlots
from flexunet.callbacks.time_limit import TimeLimit

__all__ = [
    "BackupAndRestore", "CosineDecay", "EpochChangeInference", "ReduceLROnPlateau", "TimeLimit",
    "TrainingPlots",
]
