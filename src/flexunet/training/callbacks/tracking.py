"""``logger=mlflow``: the run in an MLflow tracking store (``pip install "flexunet[mlflow]"``).

:class:`MlflowLogger` records the run's resolved hyperparameters (the same dict as its
TensorBoard HParams, :func:`flexunet.runs.sweeps.job_hparams`), every epoch's metrics with
``step`` = the epoch counted from 1, and the best checkpoint as an artifact. It talks to the
store through ``MlflowClient`` (no process-global active run, so in-process sweep jobs do not
share state). The default store is a local folder (``conf/logger/mlflow.yaml``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras


class MlflowLogger(keras.callbacks.Callback):
    """Params at the start, metrics per epoch, ``checkpoint`` as an artifact at the end.

    ``train()`` passes ``hparams`` and ``run_name``; the config gives the rest. A run that
    fails is marked FAILED by :meth:`fail`; a resumed one (``resume=``) is a new MLflow run
    of the same name whose steps go on from the epoch it resumes at.
    """

    def __init__(
        self, tracking_uri: str, experiment_name: str, checkpoint: str,
        hparams: dict[str, Any] | None = None, run_name: str | None = None,
    ) -> None:
        from mlflow import MlflowClient  # flexunet-train's check() says how to install it

        super().__init__()
        self.client = MlflowClient(tracking_uri)
        self.experiment_name, self.checkpoint = experiment_name, Path(checkpoint)
        self.hparams, self.run_name = dict(hparams or {}), run_name
        self.run_id: str | None = None

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(self.experiment_name)
        except Exception:  # a parallel sweep job created it first
            return self.client.get_experiment_by_name(self.experiment_name).experiment_id

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        from mlflow.entities import Param

        run = self.client.create_run(self._experiment_id(), run_name=self.run_name)
        self.run_id = run.info.run_id
        params = [Param(key, str(value)) for key, value in self.hparams.items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch + 1) for k, v in (logs or {}).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.checkpoint.is_file():
            self.client.log_artifact(self.run_id, str(self.checkpoint), "checkpoints")
        self.client.set_terminated(self.run_id, "FINISHED")
        self.run_id = None

    def fail(self) -> None:
        """Mark the run FAILED when training raised (Keras skips ``on_train_end`` then)."""
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED")
            self.run_id = None
