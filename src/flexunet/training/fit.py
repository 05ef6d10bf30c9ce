"""One training job: build everything from the composed config, fit, leave a run directory."""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from flexunet.config import EvalConfig
from flexunet.data.masks import parse_rgb_map
from flexunet.data.pipeline import DecodedCache, build_augment, load_arrays, make_dataset
from flexunet.data.sources import DataSource
from flexunet.data.validate import check_pairs, raise_if_problems
from flexunet.errors import ConfigError, DataError
from flexunet.runs.records import read_metrics_csv, trim_metrics_csv
from flexunet.training.callbacks import BackupAndRestore
from flexunet.training.runtime import configure_tensorflow

log = logging.getLogger(__name__)


def model_size(cfg: DictConfig) -> tuple[int, int]:
    """(width, height) of the model input."""
    return int(cfg.model.image_width), int(cfg.model.image_height)


def load_splits(cfg: DictConfig, splits: tuple[str, ...]) -> tuple[DataSource, dict]:
    """Instantiate the data source and return the (possibly limited) pairs of ``splits``."""
    source: DataSource = instantiate(cfg.data.source, _convert_="all")
    limit = cfg.data.get("limit")
    pairs = {}
    for split in splits:
        found = source.pairs(split)
        pairs[split] = found[:limit] if limit else found
        if not pairs[split]:
            raise DataError(
                f"{source.root}: the {split} split is empty; add images or change the split "
                "fractions (data.source.fractions)"
            )
    return source, pairs


def check_data(cfg: DictConfig, pairs: dict) -> None:
    """Fast validation pass over every file, so bad input fails before training starts."""
    rgb_map = parse_rgb_map(cfg.mask.rgb_map)
    problems = []
    for split_pairs in pairs.values():
        problems += check_pairs(split_pairs, rgb_map, tolerance=cfg.mask.tolerance)
    raise_if_problems(problems, "data check before training")


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


def write_model_summary(model: keras.Model, path: Path) -> None:
    buffer = io.StringIO()
    model.summary(print_fn=lambda line, **_: buffer.write(line + "\n"), line_length=110)
    path.write_text(buffer.getvalue())


def build_callbacks(cfg: DictConfig, images: np.ndarray, masks: np.ndarray) -> list:
    """The ``train.callbacks`` dict as a list; callbacks that watch the others
    (BackupAndRestore) are bound to them and run last."""
    built = {}
    for name, node in cfg.train.callbacks.items():
        if node is None:
            continue
        callback = instantiate(node, _convert_="all")
        if not isinstance(callback, keras.callbacks.Callback):
            raise ConfigError(f"train.callbacks.{name} is not a keras Callback: {type(callback)}")
        if hasattr(callback, "bind_data"):
            callback.bind_data(images, masks)
        built[name] = callback
    watchers = [cb for cb in built.values() if hasattr(cb, "bind_callbacks")]
    for callback in watchers:
        callback.bind_callbacks(built)
    return [cb for cb in built.values() if cb not in watchers] + watchers


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``train.strategy``: default (one device) or mirrored (all local GPUs)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        log.warning(
            "train.strategy=mirrored needs several GPUs, found %d: using the default strategy",
            len(gpus),
        )
        return tf.distribute.get_strategy()
    raise ConfigError(f"train.strategy={name!r}: use default or mirrored")


def prepare_resume(run_dir: Path, callbacks: list) -> None:
    """Before a resumed fit: check there is something to resume and drop metrics.csv rows of
    epochs that will be trained again."""
    backups = [cb for cb in callbacks if isinstance(cb, BackupAndRestore)]
    if not backups:
        raise ConfigError(
            "resume needs the backup callback (train.callbacks.backup); it was removed"
        )
    done = backups[0].completed_epochs()
    if done == 0 and (run_dir / "checkpoints" / "best.keras").exists():
        raise ConfigError(
            f"{run_dir}: no backup to resume from (the run finished, or was started without "
            "train.callbacks.backup); refusing to train over it. Start a new run instead"
        )
    log.info("resuming %s after %d completed epochs", run_dir, done)
    for cb in callbacks:
        if isinstance(cb, keras.callbacks.CSVLogger):
            dropped = trim_metrics_csv(Path(cb.filename), done)
            if dropped:
                log.warning("%s: dropped %d rows of epochs trained again", cb.filename, dropped)


def full_history(callbacks: list, history: dict) -> dict:
    """The whole run's epoch logs: metrics.csv when a CSVLogger writes one (it also holds
    the epochs before a resume), else this fit's history."""
    for cb in callbacks:
        if isinstance(cb, keras.callbacks.CSVLogger):
            logged = read_metrics_csv(Path(cb.filename))
            logged.pop("epoch", None)
            if logged:
                return logged
    return history


def compile_model(cfg: DictConfig) -> keras.Model:
    """Model, optimizer, loss and metrics from the config (call inside the strategy's scope).

    The optimizer's variables are created here, eagerly: created lazily inside the first
    traced train step, each comes with conditional-initialisation graphs that TensorFlow
    never frees, and an in-process sweep grew by ~27 MiB per job.
    """
    model = instantiate(cfg.model, _convert_="all")
    optimizer = instantiate(cfg.train.optimizer, _convert_="all")
    loss = instantiate(cfg.train.loss, _convert_="all")
    metrics = [instantiate(m, _convert_="all") for m in cfg.train.metrics]
    model.compile(
        optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=cfg.train.jit_compile
    )
    model.optimizer.build(model.trainable_variables)
    return model


def train(cfg: DictConfig, run_dir: Path, job_num: int = 0) -> dict:
    """Run one training job into ``run_dir``; returns the best monitored value and history.

    ``job_num`` (Hydra's ``hydra.job.num``) picks the GPU when ``runtime.gpu_per_job`` is set.
    With ``cfg.resume`` the job continues the run in ``run_dir`` from its last backup.
    """
    if cfg.evaluate_after is not None:  # a misspelled eval option fails now, not after training
        OmegaConf.merge(OmegaConf.structured(EvalConfig), cfg.evaluate_after)
    configure_tensorflow(**cfg.runtime, job_num=job_num)
    keras.utils.set_random_seed(cfg.seed)
    resuming = cfg.resume is not None
    prepare_run_dir(run_dir, resuming=resuming)
    policy = keras.mixed_precision.global_policy()
    try:
        if cfg.train.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        logs = fit(cfg, run_dir, resuming)
    finally:
        # In-process sweeps: the next job starts from a clean Keras state, and the memory
        # of this one (model, datasets, traced functions: fit's locals) is released.
        keras.mixed_precision.set_global_policy(policy)
        keras.backend.clear_session()
        gc.collect()
    result = summarize_history(logs, cfg.train.monitor, cfg.train.monitor_mode)
    log.info(
        "best %s = %.4f at epoch %d; run directory: %s",
        cfg.train.monitor, result["best_value"], result["best_epoch"], run_dir,
    )
    if cfg.evaluate_after is not None:
        from flexunet.evaluation.scorer import evaluate_run

        result["evaluation"] = evaluate_run(cfg, run_dir)["mean"]
    return result


def fit(cfg: DictConfig, run_dir: Path, resuming: bool) -> dict:
    """Data, model (inside the distribution strategy's scope), callbacks and ``model.fit``;
    returns the whole run's epoch logs."""
    source, pairs = load_splits(cfg, ("train", "valid"))
    log.info(
        "data: %s; using train %d, valid %d",
        source.describe(), len(pairs["train"]), len(pairs["valid"]),
    )
    if cfg.data.check:
        check_data(cfg, pairs)
    size = model_size(cfg)
    rgb_map = parse_rgb_map(cfg.mask.rgb_map)
    common = dict(
        size=size, rgb_map=rgb_map, tolerance=cfg.mask.tolerance,
        num_classes=cfg.mask.num_classes, batch_size=cfg.train.batch_size,
        num_parallel_calls=cfg.data.num_parallel_calls, prefetch=cfg.data.prefetch,
    )
    steps = cfg.train.steps_per_epoch
    train_cache = DecodedCache.of_mib(cfg.data.cache_mb)
    valid_cache = DecodedCache.of_mib(cfg.data.cache_mb)
    train_ds = make_dataset(
        pairs["train"], augment=build_augment(cfg.data.augment, cfg.seed), shuffle=True,
        seed=cfg.seed, repeat=steps is not None, cache=train_cache, **common,
    )
    valid_ds = make_dataset(
        pairs["valid"], repeat=cfg.train.validation_steps is not None, cache=valid_cache, **common
    )

    with make_strategy(cfg.train.strategy).scope():
        model = compile_model(cfg)
    write_model_summary(model, run_dir / "model_summary.txt")
    log.info("model: %s parameters, input %dx%d", f"{model.count_params():,}", *size)

    images, masks = load_arrays(pairs["valid"][:8], size, rgb_map, cfg.mask.tolerance)
    callbacks = build_callbacks(cfg, images, masks)
    if resuming:
        prepare_resume(run_dir, callbacks)
    try:
        history = model.fit(
            train_ds,
            validation_data=valid_ds,
            epochs=cfg.train.epochs,
            steps_per_epoch=steps,
            validation_steps=cfg.train.validation_steps,
            callbacks=callbacks,
            verbose=cfg.train.verbose,
            shuffle=False,  # the dataset is shuffled (seeded) by the pipeline
        )
    finally:
        train_cache.clear()
        valid_cache.clear()
    return full_history(callbacks, history.history)


def summarize_history(history: dict, monitor: str, mode: str) -> dict:
    """Best epoch (1-based) and value of ``monitor``, epoch count and last logged values."""
    values = history.get(monitor)
    if not values:
        raise ConfigError(
            f"train.monitor={monitor!r} is not among the logged values: {sorted(history)}"
        )
    final = {k: float(v[-1]) for k, v in history.items()}
    pick = np.nanargmax if mode == "max" else np.nanargmin
    with contextlib.suppress(ValueError):  # every value NaN: the run diverged
        best = int(pick(values))
        return {
            "best_epoch": best + 1, "best_value": float(values[best]),
            "epochs": len(values), "final": final,
        }
    return {"best_epoch": 0, "best_value": math.nan, "epochs": len(values), "final": final}
