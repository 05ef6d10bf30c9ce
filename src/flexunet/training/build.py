"""From a composed config to the objects a training job fits: data, model, callbacks.

The only place below the commands that reads the ``model``, ``data``, ``mask`` and ``train``
config nodes; ``flexunet-train`` and ``flexunet-bench`` build through it, and
:func:`flexunet.training.fit.fit` takes what it returns.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from flexunet.data.masks import parse_rgb_map
from flexunet.data.pairing import Pair
from flexunet.data.pipeline import (
    DecodedCache,
    PairBatches,
    build_augment,
    make_dataset,
    resolve_loader,
)
from flexunet.data.sources import DataSource, split_pairs
from flexunet.data.validate import check_pairs, raise_if_problems
from flexunet.errors import ConfigError
from flexunet.training.callbacks import NeedsValidationSamples, WatchesCallbacks
from flexunet.training.runtime import Runtime, tensorflow_importable

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)


def model_size(cfg: DictConfig) -> tuple[int, int]:
    """(width, height) of the model input."""
    return int(cfg.model.image_width), int(cfg.model.image_height)


def load_splits(cfg: DictConfig, splits: tuple[str, ...]) -> tuple[DataSource, dict]:
    """Instantiate the data source and return the (possibly limited) pairs of ``splits``."""
    source: DataSource = instantiate(cfg.data.source, _convert_="all")
    limit = cfg.data.get("limit")
    return source, {split: split_pairs(source, split, limit) for split in splits}


def check_data(cfg: DictConfig, pairs: dict[str, list[Pair]]) -> None:
    """Fast validation pass over every file, so bad input fails before training starts."""
    rgb_map = parse_rgb_map(cfg.mask.rgb_map)
    problems = []
    for split, split_pairs_ in pairs.items():
        problems += check_pairs(
            list(dict.fromkeys(split_pairs_)), rgb_map, tolerance=cfg.mask.tolerance,
            max_pixels=cfg.data.max_pixels, desc=f"check {split}", threshold=cfg.mask.threshold,
        )
    raise_if_problems(problems, "data check before training")


def build_dataset(
    cfg: DictConfig,
    pairs: list[Pair],
    *,
    train: bool,
    repeat: bool,
    cache: DecodedCache | None,
    runtime: Runtime | None = None,
) -> tf.data.Dataset | PairBatches:
    """flexunet-train's streaming dataset of ``pairs``: augmented and shuffled when ``train``,
    through ``data.loader`` (:func:`~flexunet.data.pipeline.resolve_loader`). With several
    processes (``runtime``) each reads its own slice of every global batch; with
    ``train.distribution=data_parallel`` batches are whole (a last smaller one is skipped)."""
    runtime = runtime or Runtime(keras.backend.backend())
    loader = resolve_loader(cfg.data.loader, tensorflow_importable(), runtime.num_processes)
    common = dict(
        size=model_size(cfg), rgb_map=parse_rgb_map(cfg.mask.rgb_map),
        tolerance=cfg.mask.tolerance, num_classes=cfg.mask.num_classes,
        batch_size=cfg.train.batch_size,
        augment=build_augment(cfg.data.augment, cfg.seed) if train else None,
        shuffle=train, seed=cfg.seed, repeat=repeat, prefetch=cfg.data.prefetch,
        cache=cache, max_pixels=cfg.data.max_pixels, threshold=cfg.mask.threshold,
    )
    if loader == "tf_data":
        return make_dataset(pairs, num_parallel_calls=cfg.data.num_parallel_calls, **common)
    return PairBatches(
        pairs, workers=cfg.data.num_parallel_calls, num_shards=runtime.num_processes,
        shard=runtime.process_id, drop_remainder=cfg.train.distribution == "data_parallel",
        **common,
    )


def steps_per_call(steps_per_execution: int, *fixed_steps: int | None) -> int:
    """``steps_per_execution`` reduced to a divisor of every fixed step count given (not null).

    Keras runs whole calls of ``steps_per_execution`` steps and stops early only when a
    dataset runs out; the endless datasets behind ``train.steps_per_epoch`` and
    ``train.validation_steps`` never do, so a call that does not divide them runs extra steps.
    """
    steps = steps_per_execution
    for fixed in fixed_steps:
        if fixed:
            steps = math.gcd(steps, fixed)
    return steps


def compile_model(cfg: DictConfig) -> keras.Model:
    """Model, optimizer, loss and metrics from the config (call inside the strategy's scope).

    The optimizer's variables are created here, eagerly: created lazily inside the first
    traced train step, each comes with conditional-initialisation graphs that TensorFlow
    never frees (see docs/performance.md). Each backend call runs
    ``train.steps_per_execution`` steps, fewer where :func:`steps_per_call` says so.
    """
    model = instantiate(cfg.model, _convert_="all")
    optimizer = instantiate(cfg.train.optimizer, _convert_="all")
    loss = instantiate(cfg.train.loss, _convert_="all")
    metrics = [instantiate(m, _convert_="all") for m in cfg.train.metrics]
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=metrics,
        jit_compile=cfg.train.jit_compile,
        steps_per_execution=steps_per_call(
            cfg.train.steps_per_execution, cfg.train.steps_per_epoch, cfg.train.validation_steps
        ),
    )
    model.optimizer.build(model.trainable_variables)
    return model


def build_callbacks(cfg: DictConfig, images: np.ndarray, masks: np.ndarray) -> list:
    """The ``train.callbacks`` dict as a list.

    A :class:`NeedsValidationSamples` callback gets the fixed validation ``images`` and
    ``masks``; a :class:`WatchesCallbacks` callback (BackupAndRestore) gets the others and
    runs last.
    """
    built = {}
    for name, node in cfg.train.callbacks.items():
        if node is None:
            continue
        callback = instantiate(node, _convert_="all")
        if not isinstance(callback, keras.callbacks.Callback):
            raise ConfigError(f"train.callbacks.{name} is not a keras Callback: {type(callback)}")
        if isinstance(callback, NeedsValidationSamples):
            callback.bind_data(images, masks)
        built[name] = callback
    watchers = [cb for cb in built.values() if isinstance(cb, WatchesCallbacks)]
    for callback in watchers:
        callback.bind_callbacks(built)
    return [cb for cb in built.values() if cb not in watchers] + watchers


def drop_model_callbacks(callbacks: list) -> list:
    """``callbacks`` without those that run the model on their own (EpochChangeInference):
    in a multi-process run every process must take part in each model call, which such a
    callback on process 0 alone would wait for forever."""
    from flexunet.training.callbacks import EpochChangeInference

    kept = [cb for cb in callbacks if not isinstance(cb, EpochChangeInference)]
    if len(kept) < len(callbacks):
        log.warning("several processes: train.callbacks.epoch_change_infer is off")
    return kept


def build_logger(
    cfg: DictConfig, run_dir: Path, hparams: dict[str, Any]
) -> keras.callbacks.Callback:
    """``logger`` (logger=mlflow): the tracking callback of the run in ``run_dir``, recording
    ``hparams`` (the run's TensorBoard HParams)."""
    make = instantiate(cfg.logger, _partial_=True)  # hparams stay a plain dict, unresolved
    return make(hparams=hparams, run_name="/".join(run_dir.parts[-2:]))


DISTRIBUTIONS = ("default", "mirrored", "data_parallel")


@contextlib.contextmanager
def distribution_scope(name: str, backend: str) -> Iterator[None]:
    """``train.distribution`` around building the model (and, for Keras' distribution,
    training it): default (one device), mirrored (TensorFlow's MirroredStrategy over the GPUs
    of this host) or data_parallel (JAX: ``keras.distribution.DataParallel`` over every device
    of every process, the batch split between them)."""
    if name not in DISTRIBUTIONS:
        raise ConfigError(f"train.distribution={name!r}: use one of {', '.join(DISTRIBUTIONS)}")
    if name == "default":
        yield
    elif name == "mirrored":
        if backend != "tensorflow":
            raise ConfigError("train.distribution=mirrored is TensorFlow's: with "
                              "runtime.backend=jax use train.distribution=data_parallel")
        with mirrored_strategy().scope():
            yield
    else:
        if backend != "jax":
            raise ConfigError("train.distribution=data_parallel needs runtime.backend=jax "
                              "(on TensorFlow use train.distribution=mirrored)")
        devices = keras.distribution.list_devices()
        log.info("train.distribution=data_parallel over %d devices", len(devices))
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
        )
        try:
            yield
        finally:
            keras.distribution.set_distribution(previous)


def mirrored_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over the local GPUs, or the default strategy (and a warning) with
    fewer than two."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    log.warning(
        "train.distribution=mirrored needs several GPUs, found %d: using one device", len(gpus)
    )
    return tf.distribute.get_strategy()
