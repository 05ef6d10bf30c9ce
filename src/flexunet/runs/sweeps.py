"""Sweeps: the sweep directory's summary.csv and the TensorBoard HParams of its jobs.

Every job logs its hyperparameters for TensorBoard's HParams tab (:func:`job_hparams`): the
resolved model, optimizer, loss, data and batch settings plus its overrides. Each finished
job (:func:`flexunet.runs.job.run_job`) rebuilds ``SWEEP_DIR/summary.csv`` from all
``run_info.json`` files under the sweep directory while holding a file lock, so parallel
workers (joblib, SLURM) never lose a row. :class:`SweepCallback` (a Hydra callback, see
``hydra.callbacks`` in ``conf/train.yaml``) writes the sweep's HParams experiment (swept keys
and metrics) when the multirun starts; when a sweep over ``data.source.fold`` with
``evaluate_after`` ends, it scores the folds' ensemble into ``SWEEP_DIR/eval_SPLIT/``.
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from flexunet.runs.records import RUN_INFO, atomic_open
from flexunet.runs.reuse import parse_overrides

log = logging.getLogger(__name__)

SUMMARY = "summary.csv"
#: A sweep over this key trains the folds of one k-fold split (data.source.folds).
FOLD_KEY = "data.source.fold"
SUMMARY_COLUMNS = (
    "job", "status", "overrides", "monitor", "best_epoch", "best_value", "epochs",
    "wall_time_s", "rss_mib",
)


# --- TensorBoard HParams -------------------------------------------------------------------


#: The resolved config nodes every job's HParams hold, flattened to ``node.key: value``.
HPARAM_NODES = ("model", "train.optimizer", "train.loss", "data", "train.batch_size",
                "train.epochs")
#: Nodes kept whole as one compact string (an augmentation pipeline is one choice).
COMPACT_NODES = frozenset({"data.augment"})


def _hparam_value(value: Any) -> bool | int | float | str:
    return value if isinstance(value, bool | int | float | str) else str(value)


def compact(value: Any) -> str:
    """A nested config value as one short string; a ``_target_`` node as ``Name(key=value)``
    (``Compose(transforms=[HorizontalFlip(p=0.5), ...])``)."""
    if isinstance(value, dict):
        args = ", ".join(f"{k}={compact(v)}" for k, v in value.items() if k != "_target_")
        target = value.get("_target_")
        return f"{str(target).rsplit('.', 1)[-1]}({args})" if target else f"{{{args}}}"
    if isinstance(value, list):
        return f"[{', '.join(compact(v) for v in value)}]"
    return str(value)


def _flatten(key: str, value: Any) -> dict[str, bool | int | float | str]:
    if isinstance(value, dict) and key not in COMPACT_NODES:
        flat = [_flatten(f"{key}.{name}", item) for name, item in value.items()]
        return {k: v for part in flat for k, v in part.items()}
    return {key: compact(value) if isinstance(value, dict | list) else _hparam_value(value)}


def resolved_hparams(cfg: DictConfig) -> dict[str, bool | int | float | str]:
    """The resolved values of :data:`HPARAM_NODES` as flat ``key: scalar`` pairs (lists,
    dicts and ``data.augment`` as compact strings), so that any two runs can be told apart."""
    hparams: dict[str, bool | int | float | str] = {}
    for key in HPARAM_NODES:
        node = OmegaConf.select(cfg, key)
        value = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        hparams.update(_flatten(key, value))
    return hparams


def job_hparams(cfg: DictConfig, overrides: Iterable[str], tags: Iterable[str]) -> dict[str, Any]:
    """This job's hyperparameters: the resolved config (:func:`resolved_hparams`), then every
    override's key and value as given (deletions skipped; a sweep's keys keep their names),
    and the tags."""
    parsed = parse_overrides(list(overrides))
    hparams: dict[str, Any] = resolved_hparams(cfg)
    hparams.update(
        {o.key_or_group: _hparam_value(o.value()) for o in parsed if not o.is_delete()}
    )
    hparams["tags"] = ",".join(tags)
    return hparams


def swept_keys(overrides: Iterable[str], sweeper_params: dict | None) -> list[str]:
    """Keys a multirun varies: sweep-valued overrides plus the sweeper's own search space."""
    lines = list(overrides) + [f"{k}={v}" for k, v in (sweeper_params or {}).items()]
    parsed = parse_overrides(lines)
    return list(dict.fromkeys(o.key_or_group for o in parsed if o.is_sweep_override()))


def hparams_metrics(monitor: str) -> list:
    """The HParams tab's metric columns: loss and the monitored metric, train and validation,
    plus the best monitored value each job logs when it ends."""
    # summary_v2 is what tensorboard.plugins.hparams.api exports, minus its Keras callback
    # (whose import would load TensorFlow into the sweep's main process).
    from tensorboard.plugins.hparams import summary_v2 as hp

    names = list(dict.fromkeys(["loss", monitor.removeprefix("val_")]))
    metrics = [
        hp.Metric(f"epoch_{name}", group=group, display_name=f"{name} ({group})")
        for name in names for group in ("train", "validation")
    ]
    return [*metrics, hp.Metric(f"best_{monitor}", display_name=f"best {monitor}")]


def _write_summary(logdir: Path, summary: Any, step: int = 0) -> None:
    """Write one Summary protobuf as a new event file, in pure Python: no TensorFlow import
    in the sweep's main process (it only launches joblib or SLURM jobs) and no TensorFlow op
    (the in-process jobs set up the GPU later)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    logdir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.{time.time_ns()}"
    with (logdir / name).open("wb") as handle:
        writer = RecordWriter(handle)
        writer.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        writer.write(Event(wall_time=now, step=step, summary=summary).SerializeToString())


def write_hparams_config(sweep_dir: Path, keys: list[str], monitor: str) -> None:
    from tensorboard.plugins.hparams import summary_v2 as hp

    config = hp.hparams_config_pb(
        hparams=[hp.HParam(key) for key in keys], metrics=hparams_metrics(monitor)
    )
    _write_summary(sweep_dir, config)


def write_job_hparams(tb_dir: Path, hparams: dict[str, Any], trial_id: str) -> None:
    from tensorboard.plugins.hparams import summary_v2 as hp

    _write_summary(tb_dir, hp.hparams_pb(hparams, trial_id=trial_id))


def write_best_value(tb_dir: Path, monitor: str, value: float, epochs: int) -> None:
    from tensorboard.compat.proto.summary_pb2 import Summary

    summary = Summary(value=[Summary.Value(tag=f"best_{monitor}", simple_value=value)])
    _write_summary(tb_dir, summary, step=epochs)


class SweepCallback(Callback):
    """Hydra callback: the sweep directory's HParams experiment and final summary."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper_params = OmegaConf.select(config, "hydra.sweeper.params")
        keys = swept_keys(
            config.hydra.overrides.task,
            OmegaConf.to_container(sweeper_params) if sweeper_params else None,
        )
        write_hparams_config(Path(config.hydra.sweep.dir), keys, config.train.monitor)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        path = rebuild_summary(sweep_dir)
        log.info("sweep summary: %s", path)
        sweeper_params = OmegaConf.select(config, "hydra.sweeper.params")
        keys = swept_keys(
            config.hydra.overrides.task,
            OmegaConf.to_container(sweeper_params) if sweeper_params else None,
        )
        if FOLD_KEY in keys and OmegaConf.select(config, "evaluate_after") is not None:
            # k-fold: the folds' ensemble on their common test split, SWEEP_DIR/eval_SPLIT/
            from flexunet.commands.evaluate import evaluate_ensemble
            from flexunet.errors import FlexUNetError

            try:
                evaluate_ensemble(sweep_dir, OmegaConf.to_container(config.evaluate_after))
            except FlexUNetError as err:
                log.error("the folds' ensemble was not evaluated: %s", err)


# --- summary.csv ---------------------------------------------------------------------------


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` itself (flock works on a directory's file
    descriptor), so that no lock file is left behind in the sweep directory."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def summary_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job found under ``sweep_dir``, by job number."""
    rows = []
    for path in sweep_dir.rglob(RUN_INFO):
        info = json.loads(path.read_text())
        row = {key: info.get(key) for key in SUMMARY_COLUMNS}
        row["overrides"] = " ".join(info.get("overrides", []))
        row.update({f"final_{k}": v for k, v in (info.get("final") or {}).items()})
        row["error"] = info.get("error")
        rows.append(row)
    return sorted(rows, key=lambda r: (r["job"] is None, r["job"]))


def rebuild_summary(sweep_dir: Path) -> Path:
    """Rewrite ``summary.csv`` from the jobs' records (locked, atomic: safe for parallel jobs)."""
    path = sweep_dir / SUMMARY
    with _locked(sweep_dir):
        rows = summary_rows(sweep_dir)
        finals = sorted({k for row in rows for k in row if k.startswith("final_")})
        columns = [*SUMMARY_COLUMNS, *finals, "error"]
        with atomic_open(path, newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
    return path
