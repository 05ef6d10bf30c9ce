"""Keras callbacks that Keras does not ship, referenced from ``conf/train/callbacks``."""

from flexunet.training.callbacks.backup import BackupAndRestore
from flexunet.training.callbacks.base import NeedsValidationSamples, WatchesCallbacks
from flexunet.training.callbacks.checkpoint import LastCheckpoint
from flexunet.training.callbacks.epoch_change import EpochChangeInference
from flexunet.training.callbacks.epoch_logs import EpochLog, MetricsCSV, TensorBoard
from flexunet.training.callbacks.lr import CosineDecay, ReduceLROnPlateau
from flexunet.training.callbacks.plots import TrainingPlots
from flexunet.training.callbacks.time_limit import TimeLimit
from flexunet.training.callbacks.tracking import MlflowLogger

__all__ = [
    "BackupAndRestore", "CosineDecay", "EpochChangeInference", "EpochLog", "LastCheckpoint",
    "MetricsCSV",
    "MlflowLogger", "NeedsValidationSamples", "ReduceLROnPlateau", "TensorBoard", "TimeLimit",
    "TrainingPlots", "WatchesCallbacks",
]
