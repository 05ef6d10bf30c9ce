"""``flexunet-train``: compose the config, train one job, return the monitored value.

    flexunet-train                                   # CPU model on the synthetic default
    flexunet-train model.base_filters=32 train.epochs=5
    flexunet-train -m train.optimizer.learning_rate=1e-3,3e-4     # SWEEP_DIR/summary.csv
    flexunet-train -m hparams_search=optuna                       # Optuna TPE search
    flexunet-train experiment=skin_cancer_512                     # the published run
    flexunet-train resume=outputs/train/runs/DATE                 # continue a killed run
    flexunet-train logger=mlflow                                  # also track it in MLflow
    flexunet-train runtime.backend=jax data.loader=py_dataset     # JAX, without TensorFlow
    flexunet-train runtime.backend=jax train.distribution=data_parallel   # docs/distributed.md
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch
from flexunet.config import EvalConfig, check_config
from flexunet.data.pairing import Pair
from flexunet.errors import ConfigError
from flexunet.runs.reuse import resume_argv
from flexunet.training.runtime import Runtime

log = logging.getLogger(__name__)


def check(cfg: DictConfig) -> dict[str, list[Pair]]:
    """Everything that can be found wrong before training, so that a mistake costs seconds
    and leaves no half-made run: unknown keys (also those added with ``+``) and out-of-range
    values, the ``evaluate_after`` options, the data folders and, with ``data.check``, every
    file. Returns the train and valid pairs.

    Sets up the process first (:func:`start_runtime`): the Keras backend is fixed before
    anything here imports Keras."""
    from flexunet.training.runtime import select_backend

    select_backend(cfg.runtime.backend)  # checking _target_s imports Keras
    check_config(cfg)
    start_runtime(cfg)
    from flexunet.training import build
    from flexunet.training.runtime import choose_precision

    choose_precision(cfg.train.mixed_precision)
    if cfg.logger is not None and importlib.util.find_spec("mlflow") is None:
        raise ConfigError('logger=mlflow needs MLflow: pip install "flexunet[mlflow]"')
    if cfg.evaluate_after is not None:  # a misspelled eval option fails now, not after training
        OmegaConf.merge(OmegaConf.structured(EvalConfig), cfg.evaluate_after)
    source, pairs = build.load_splits(cfg, ("train", "valid"))
    log.info(
        "data: %s; using train %d, valid %d",
        source.describe(), len(pairs["train"]), len(pairs["valid"]),
    )
    if cfg.data.check:
        build.check_data(cfg, pairs)
    return pairs


def start_runtime(cfg: DictConfig, job_num: int | None = None) -> Runtime:
    """The ``runtime`` node applied once per process: the Keras backend, the processes of a
    ``train.distribution=data_parallel`` run joined, GPU pinning (``job_num``, by default
    Hydra's ``hydra.job.num``), threads."""
    from flexunet.training.runtime import configure_runtime

    if job_num is None:
        job_num = (OmegaConf.select(HydraConfig.get(), "job.num", default=None) or 0
                   if HydraConfig.initialized() else 0)
    if cfg.resume is not None and (cfg.runtime.num_processes or 1) > 1:
        raise ConfigError("resume= continues a run in one process; several processes "
                          "(runtime.num_processes) cannot resume yet")
    return configure_runtime(
        **cfg.runtime, job_num=job_num, distributed=cfg.train.distribution == "data_parallel"
    )


def with_run_dir(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """A copy of ``cfg`` whose ``paths.run_dir`` (where the callbacks write) is ``run_dir``."""
    copy = cfg.copy()
    copy.paths.run_dir = str(run_dir)
    return copy


def train(
    cfg: DictConfig, run_dir: Path, job_num: int, pairs: dict[str, list[Pair]]
) -> dict:
    """Build data, model and callbacks from ``cfg`` and the checked ``pairs``, fit them into
    ``run_dir``; returns the best monitored value and the history
    (:func:`~flexunet.training.fit.summarize_history`).

    ``job_num`` (Hydra's ``hydra.job.num``) picks the GPU when ``runtime.gpu_per_job`` is set.
    With ``cfg.resume`` the job continues the run in ``run_dir`` from its last backup. In a
    multi-process run only process 0 writes files (the others train the same steps).
    """
    runtime = start_runtime(cfg, job_num)
    import keras

    from flexunet.data.masks import parse_rgb_map
    from flexunet.data.pipeline import DecodedCache, load_arrays
    from flexunet.runs.job import prepare_run_dir
    from flexunet.runs.sweeps import job_hparams
    from flexunet.training import build
    from flexunet.training.fit import fit, summarize_history, write_model_summary
    from flexunet.training.runtime import choose_precision

    keras.utils.set_random_seed(cfg.seed)
    resuming = cfg.resume is not None
    if runtime.is_chief:
        prepare_run_dir(run_dir, resuming=resuming)
    policy = keras.mixed_precision.global_policy()
    caches = [DecodedCache.of_mib(cfg.data.cache_mb) for _ in ("train", "valid")]
    tracker = None
    precision, why = choose_precision(cfg.train.mixed_precision)
    log.info("precision: %s (%s)", precision, why)
    # Processes K > 0 run every callback too (a checkpoint's save may take part in a
    # collective that process 0 would otherwise wait for forever), into a scratch folder.
    scratch = None if runtime.is_chief else Path(tempfile.mkdtemp(prefix="flexunet-process-"))
    try:
        keras.mixed_precision.set_global_policy(precision)
        train_data = build.build_dataset(
            cfg, pairs["train"], train=True, repeat=cfg.train.steps_per_epoch is not None,
            cache=caches[0], runtime=runtime,
        )
        valid_data = build.build_dataset(
            cfg, pairs["valid"], train=False, repeat=cfg.train.validation_steps is not None,
            cache=caches[1], runtime=runtime,
        )
        log.info("backend %s, data loader %s", runtime.backend, type(train_data).__name__)
        with build.distribution_scope(cfg.train.distribution, runtime.backend):
            model = build.compile_model(cfg)
            size = build.model_size(cfg)
            log.info("model: %s parameters, input %dx%d", f"{model.count_params():,}", *size)
            samples = load_arrays(
                pairs["valid"][:8], size, parse_rgb_map(cfg.mask.rgb_map), cfg.mask.tolerance,
                cfg.data.max_pixels, cfg.mask.threshold,
            )
            callbacks = build.build_callbacks(
                cfg if runtime.is_chief else with_run_dir(cfg, scratch), *samples
            )
            if runtime.num_processes > 1:
                callbacks = build.drop_model_callbacks(callbacks)
            if runtime.is_chief:
                write_model_summary(model, run_dir / "model_summary.txt")
                if cfg.logger is not None:
                    overrides = (HydraConfig.get().overrides.task
                                 if HydraConfig.initialized() else [])
                    tracker = build.build_logger(
                        cfg, run_dir, job_hparams(cfg, overrides, cfg.tags)
                    )
                    callbacks.append(tracker)
            logs = fit(
                model, train_data, valid_data, callbacks, epochs=cfg.train.epochs,
                steps_per_epoch=cfg.train.steps_per_epoch,
                validation_steps=cfg.train.validation_steps, verbose=cfg.train.verbose,
                resume_dir=run_dir if resuming else None,
            )
    except BaseException:
        if tracker is not None:
            tracker.fail()
        raise
    finally:
        # In-process sweeps: the next job starts from a clean Keras state, and the memory
        # of this one (model, datasets, traced functions) is released.
        for cache in caches:
            cache.clear()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        keras.mixed_precision.set_global_policy(policy)
        keras.backend.clear_session()
        gc.collect()
    result = summarize_history(logs, cfg.train.monitor, cfg.train.monitor_mode)
    result["precision"] = precision
    log.info(
        "best %s = %.4f at epoch %d; run directory: %s",
        cfg.train.monitor, result["best_value"], result["best_epoch"], run_dir,
    )
    if cfg.evaluate_after is not None and runtime.is_chief:
        from flexunet.commands.evaluate import evaluate_run

        result["evaluation"] = evaluate_run(cfg, run_dir)["mean"]
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def run(cfg: DictConfig) -> float:
    from flexunet.runs.job import run_job

    # check() reads the config itself: in a multirun a bad job is recorded, not fatal.
    with exit_on_user_error(None):
        return run_job(cfg, check, train)


def main() -> None:
    try:
        sys.argv = resume_argv(sys.argv)
    except ConfigError as err:
        sys.exit(f"flexunet-train: {err}")
    launch(run)


if __name__ == "__main__":
    main()
