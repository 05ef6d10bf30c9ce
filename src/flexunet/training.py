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
from hydra.utils import instantiate
from omegaconf import DictConfig

from flexunet.data.masks import parse_rgb_map
from flexunet.data.pipeline import build_augment, load_arrays, make_dataset
from flexunet.data.sources import DataSource
from flexunet.data.validate import check_pairs, raise_if_problems
from flexunet.errors import ConfigError, DataError
from flexunet.runtime import configure_tensorflow

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


def _prepare_run_dir(run_dir: Path, resuming: bool) -> None:
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
    callbacks = []
    for name, node in cfg.train.callbacks.items():
        if node is None:
            continue
        callback = instantiate(node, _convert_="all")
        if not isinstance(callback, keras.callbacks.Callback):
            raise ConfigError(f"train.callbacks.{name} is not a keras Callback: {type(callback)}")
        if hasattr(callback, "bind_data"):
            callback.bind_data(images, masks)
        callbacks.append(callback)
    return callbacks


def compile_model(cfg: DictConfig) -> keras.Model:
    model = instantiate(cfg.model, _convert_="all")
    optimizer = instantiate(cfg.train.optimizer, _convert_="all")
    loss = instantiate(cfg.train.loss, _convert_="all")
    metrics = [instantiate(m, _convert_="all") for m in cfg.train.metrics]
    model.compile(
        optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=cfg.train.jit_compile
    )
    return model


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Run one training job into ``run_dir``; returns the best monitored value and history."""
    configure_tensorflow(**cfg.runtime)
    keras.utils.set_random_seed(cfg.seed)
    _prepare_run_dir(run_dir, resuming=False)

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
    train_ds = make_dataset(
        pairs["train"], augment=build_augment(cfg.data.augment, cfg.seed), shuffle=True,
        seed=cfg.seed, repeat=steps is not None, **common,
    )
    valid_ds = make_dataset(pairs["valid"], repeat=cfg.train.validation_steps is not None, **common)

    model = compile_model(cfg)
    write_model_summary(model, run_dir / "model_summary.txt")
    log.info("model: %s parameters, input %dx%d", f"{model.count_params():,}", *size)

    images, masks = load_arrays(pairs["valid"][:8], size, rgb_map, cfg.mask.tolerance)
    callbacks = build_callbacks(cfg, images, masks)
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
    result = summarize_history(history.history, cfg.train.monitor, cfg.train.monitor_mode)
    log.info(
        "best %s = %.4f at epoch %d; run directory: %s",
        cfg.train.monitor, result["best_value"], result["best_epoch"], run_dir,
    )
    del model, train_ds, valid_ds
    keras.backend.clear_session()
    gc.collect()
    return result


def summarize_history(history: dict, monitor: str, mode: str) -> dict:
    values = history.get(monitor)
    if not values:
        raise ConfigError(
            f"train.monitor={monitor!r} is not among the logged values: {sorted(history)}"
        )
    pick = np.nanargmax if mode == "max" else np.nanargmin
    with contextlib.suppress(ValueError):
        best = int(pick(values))
        return {
            "best_epoch": best + 1,
            "best_value": float(values[best]),
            "final": {k: float(v[-1]) for k, v in history.items()},
        }
    return {"best_epoch": 0, "best_value": math.nan, "final": {}}
