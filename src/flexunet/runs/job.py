"""One training job, recorded: ``run_info.json``, failure handling, the sweep's summary.

:func:`run_job` wraps the train command's task for Hydra. It writes ``run_info.json`` into the
run directory when the job starts and ends, logs the job's hyperparameters (the resolved
model, optimizer, loss and data config and its ``hydra.overrides.task``) for TensorBoard's
HParams tab and returns the monitored value. In a
multirun a failed or diverged job is recorded as such and returns a bad finite value
(:func:`failure_value`), so the other jobs and an Optuna study go on; a single run re-raises,
so the user sees the error and a non-zero exit code.

In a multi-process run (``train.distribution=data_parallel``) process 0 does all of this;
the other processes train the same steps and write only their log, ``ranks/K.log``.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from flexunet.errors import ConfigError
from flexunet.runs.records import RUN_INFO, read_run_info, write_json_atomic
from flexunet.runs.sweeps import job_hparams, rebuild_summary, write_best_value, write_job_hparams
from flexunet.training.runtime import Runtime, current_runtime, process_rss_mib

log = logging.getLogger(__name__)

FAILURE_MAGNITUDE = 1e9  # far worse than any loss or metric, finite so Optuna's TPE can rank it


def failure_value(mode: str) -> float:
    """The value a failed or diverged job reports: the worst possible for ``mode``."""
    return -FAILURE_MAGNITUDE if mode == "max" else FAILURE_MAGNITUDE


def prepare_run_dir(run_dir: Path, resuming: bool) -> None:
    """Refuse to train over a finished run; create the run directory's sub-folders."""
    best = run_dir / "checkpoints" / "best.keras"
    if best.exists() and not resuming:
        raise ConfigError(
            f"{run_dir} already holds a trained model ({best}); refusing to overwrite it. "
            f"Start a new run (a new hydra.run.dir) or continue this one with resume={run_dir}"
        )
    for sub in ("checkpoints", "tensorboard"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)


def _other_process(
    cfg: DictConfig, run_dir: Path, job_num: int, prepared: Any,
    train: Callable[[DictConfig, Path, int, Any], dict], runtime: Runtime,
) -> float:
    """Process K > 0 of a multi-process run: its log goes to ``ranks/K.log`` (not Hydra's
    ``train.log``, which process 0 writes); it trains and records nothing else."""
    path = run_dir / "ranks" / f"{runtime.process_id}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    for logger in (logging.getLogger(), *(logging.getLogger(name)
                                          for name in logging.root.manager.loggerDict)):
        for old in [h for h in getattr(logger, "handlers", []) if
                    isinstance(h, logging.FileHandler)]:
            handler.setFormatter(old.formatter)
            logger.removeHandler(old)
            old.close()
    logging.getLogger().addHandler(handler)
    log.info("process %d of %d in %s", runtime.process_id, runtime.num_processes, run_dir)
    result = train(cfg, run_dir, job_num, prepared)
    return result["best_value"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_job(
    cfg: DictConfig,
    check: Callable[[DictConfig], Any],
    train: Callable[[DictConfig, Path, int, Any], dict],
) -> float:
    """Run one recorded job of the current HydraConfig: ``prepared = check(cfg)``, then
    ``train(cfg, run_dir, job_num, prepared)``.

    ``check`` finds what is wrong with the config and the data before the run directory
    holds anything but Hydra's log; ``train`` returns ``summarize_history``'s dict
    (best_epoch, best_value, epochs, final). See the module doc for what is recorded.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir).resolve()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    job_num = OmegaConf.select(hydra_cfg, "job.num", default=None) or 0
    resuming = cfg.resume is not None
    mode = cfg.train.monitor_mode
    new_info = {
        "job": job_num,
        "sweep_dir": str(Path(hydra_cfg.sweep.dir).resolve()) if multirun else None,
        "overrides": list(hydra_cfg.overrides.task),
        "tags": list(cfg.tags),
        "monitor": cfg.train.monitor,
        "monitor_mode": mode,
    }
    try:
        prepared = check(cfg)
        runtime = current_runtime()
        if not runtime.is_chief:
            return _other_process(cfg, run_dir, job_num, prepared, train, runtime)
        prepare_run_dir(run_dir, resuming=resuming)
    except Exception as err:
        if not multirun:
            raise
        log.exception("job %d not started in %s", job_num, run_dir)
        if not (run_dir / RUN_INFO).exists():  # never over another run's record
            new_info.update(status="failed", error=f"{type(err).__name__}: {err}",
                            finished=_now())
            write_json_atomic(run_dir / RUN_INFO, new_info)
            rebuild_summary(Path(new_info["sweep_dir"]))
        return failure_value(mode)

    info = read_run_info(run_dir) if resuming else {}
    if not info:  # a new run (or a resumed one from before run_info.json existed)
        info = new_info
        write_job_hparams(
            run_dir / "tensorboard", job_hparams(cfg, info["overrides"], info["tags"]),
            trial_id=run_dir.name,
        )
    previous_time = info.get("wall_time_s") or 0.0
    info.update(
        backend=runtime.backend, processes=runtime.num_processes,
        status="running", started=_now(), finished=None, error=None, traceback=None,
        host=socket.gethostname(), pid=os.getpid(), resumed=info.get("resumed", -1) + 1,
    )
    write_json_atomic(run_dir / RUN_INFO, info)

    start = time.monotonic()
    failure: Exception | None = None
    try:
        result = train(cfg, run_dir, job_num, prepared)
    except Exception as err:
        failure = err
        log.exception("job %d failed; run directory: %s", job_num, run_dir)
        info.update(
            status="failed", error=f"{type(err).__name__}: {err}",
            traceback=traceback.format_exc(),
        )
    else:
        best = result["best_value"]
        info.update(
            status="completed" if math.isfinite(best) else "diverged",
            best_epoch=result["best_epoch"], best_value=best,
            epochs=result["epochs"], final=result["final"], precision=result.get("precision"),
        )
        write_best_value(run_dir / "tensorboard", cfg.train.monitor, best, result["epochs"])
    info.update(
        finished=_now(), wall_time_s=round(previous_time + time.monotonic() - start, 1),
        rss_mib=process_rss_mib(),
    )
    write_json_atomic(run_dir / RUN_INFO, info)
    log.info("job %d %s; process RSS %s MiB", job_num, info["status"], info["rss_mib"])
    if info.get("sweep_dir"):
        rebuild_summary(Path(info["sweep_dir"]))
    if failure is not None and not multirun:
        raise failure
    return info["best_value"] if info["status"] == "completed" else failure_value(mode)
