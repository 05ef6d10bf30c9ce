"""Structured-config schemas: a misspelled key in YAML or on the command line is an error.

The schemas are registered in Hydra's ConfigStore and named first in each primary config's
defaults list (``conf/train.yaml`` etc.), so every YAML file merged on top of them is checked.
Nodes that are handed to ``hydra.utils.instantiate`` (model, optimizer, loss, callbacks, ...)
are typed ``Any`` here; their keys are checked by the target's own signature, which takes
no ``**kwargs`` for the project's own targets.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from flexunet.data.masks import DEFAULT_MAX_PIXELS
from flexunet.errors import ConfigError
from flexunet.inference.options import PredictOptions


def at_least(minimum: float, default: Any) -> Any:
    """A schema field whose value (when not null) must be at least ``minimum``; checked by
    :func:`check_config`."""
    return field(default=default, metadata={"min": minimum})


@dataclass
class PathsConfig:
    root_dir: str = "${hydra:runtime.cwd}"
    data_dir: str = "${paths.root_dir}/data"
    shared_data: str = "${paths.root_dir}/../shared/data"  # the shared sample datasets
    output_dir: str = "outputs"  # relative to the directory the command runs from
    run_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class MaskConfig:
    # "R,G,B" (or "G" for grey) -> class index; colours are matched at the original mask size.
    rgb_map: dict[str, int] = field(default_factory=dict)
    num_classes: int = 2
    # Max per-channel distance at which a colour snaps to the nearest rgb_map colour
    # (0: every colour must match exactly; use ~40 for JPEG-compressed masks).
    tolerance: int = 0
    # Grey masks (black/white rgb_map only): values above it are lesion, the rest skin, so
    # interpolated grey edges are accepted; a mostly mid-grey mask is still an error
    # (flexunet.data.masks.apply_threshold). null: every colour must be in rgb_map.
    threshold: int | None = None


@dataclass
class DataConfig:
    source: Any = None  # _target_ of a flexunet.data.sources class
    augment: Any = None  # _target_: albumentations.Compose, or null for none
    # auto: tf_data when TensorFlow can be imported (and one process), else py_dataset;
    # tf_data: tf.data; py_dataset: keras.utils.PyDataset, which needs no TensorFlow
    loader: str = "auto"
    num_parallel_calls: int = at_least(1, 2)  # decoding threads (py_dataset: its workers)
    prefetch: int = at_least(0, 2)  # batches read ahead
    # memory per dataset for decoded, resized pairs (0: decode each time)
    cache_mb: float = at_least(0, 256)
    check: bool = True  # validate every file before training starts
    limit: int | None = at_least(1, None)  # at most this many pairs per split (quick tests)
    # larger images and masks (width * height) are refused as possible decompression bombs
    max_pixels: int = at_least(1, DEFAULT_MAX_PIXELS)


@dataclass
class RuntimeConfig:
    # Keras backend: tensorflow | jax (KERAS_BACKEND in the environment wins)
    backend: str = "tensorflow"
    intra_op_threads: int = 0  # 0: TensorFlow's choice
    inter_op_threads: int = 0
    gpu_memory_growth: bool = True
    # One GPU per job: CUDA_VISIBLE_DEVICES = hydra.job.num % (GPUs visible), set at the first
    # job of each process before TensorFlow starts (joblib workers keep their first GPU).
    gpu_per_job: bool = False
    # train.distribution=data_parallel over several processes (docs/distributed.md): all three
    # set, or all null (one process, or under SLURM what jax.distributed detects by itself)
    coordinator: str | None = None  # HOST:PORT of process 0
    num_processes: int | None = at_least(1, None)
    process_id: int | None = at_least(0, None)


@dataclass
class TrainConfig:
    epochs: int = at_least(1, 20)
    batch_size: int = at_least(1, 4)
    steps_per_epoch: int | None = at_least(1, None)  # null: one pass over the training split
    validation_steps: int | None = at_least(1, None)
    monitor: str = "val_lesion_dice"
    monitor_mode: str = "max"
    optimizer: Any = None
    loss: Any = None
    metrics: list[Any] = field(default_factory=list)
    callbacks: dict[str, Any] = field(default_factory=dict)
    # default (one device) | mirrored (TensorFlow, the GPUs of one host) |
    # data_parallel (JAX, every device of every process; docs/distributed.md)
    distribution: str = "default"
    # auto | float32 | mixed_float16 | mixed_bfloat16 (flexunet.training.runtime.choose_precision)
    mixed_precision: str = "auto"
    jit_compile: bool = False
    steps_per_execution: int = at_least(1, 4)  # training steps per call into the backend
    verbose: int = 2  # Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch


@dataclass
class TrainJobConfig:
    model: Any = None
    data: DataConfig = field(default_factory=DataConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    task_name: str = "train"
    seed: int = 137
    tags: list[str] = field(default_factory=list)
    resume: str | None = None
    # After training: score checkpoints/best.keras on this split (eval.* options) into
    # RUN_DIR/eval_SPLIT/; null: no evaluation (run flexunet-eval yourself).
    evaluate_after: Any = None  # eval.* keys (checked against EvalConfig when used), or null
    # logger=mlflow (conf/logger/mlflow.yaml): a tracking callback built by train(), or null
    logger: Any = None


@dataclass
class PrepareJobConfig:
    """``flexunet-prepare``: check a folder and split it into train/valid/test."""

    source: str | None = None  # folder with image_dir/ and mask_dir/ (read only)
    output: str | None = None  # new folder for {train,valid,test}/{images,masks}
    metadata: str | None = None  # HAM10000_metadata.csv: split by lesion_id
    check_only: bool = False
    fractions: dict[str, float] = field(default_factory=dict)
    seed: int = 137
    image_dir: str = "images"
    mask_dir: str = "masks"
    mask_suffixes: list[str] = field(default_factory=list)
    link: str = "copy"  # copy | symlink | hardlink
    overwrite: bool = False  # add/replace files in a non-empty output (never deletes)
    mask: MaskConfig = field(default_factory=MaskConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    task_name: str = "prepare"


@dataclass
class EvalConfig(PredictOptions):
    split: str = "test"  # train | valid | test | all
    report_worst: int = at_least(0, 12)  # report.html shows this many lowest-Dice images


@dataclass
class EvaluateJobConfig:
    ckpt_path: Any = MISSING  # a checkpoint, a run or sweep directory, or a list of runs
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    task_name: str = "evaluate"


@dataclass
class InferConfig(PredictOptions):
    input: str | None = None  # an image file, a folder (its images) or a glob pattern
    images_dir: str | None = None  # the former name of `input` (kept as an alias)
    output_dir: str = "${paths.run_dir}/predictions"
    overwrite: bool = False  # write into a non-empty output_dir (same names are replaced)
    resume: bool = False  # continue into output_dir: images whose mask exists are skipped
    on_error: str = "skip"  # skip: list a bad image in infer_errors.csv, go on; stop: stop
    max_pixels: int = at_least(1, DEFAULT_MAX_PIXELS)  # larger images are refused (bombs)
    overlay: bool = False  # also write the image with the lesion contour
    probabilities: bool = False  # also write the foreground probability (8-bit PNG)


@dataclass
class InferJobConfig:
    ckpt_path: Any = MISSING  # a checkpoint, a run or sweep directory, or a list of runs
    infer: InferConfig = field(default_factory=InferConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    task_name: str = "infer"


@dataclass
class FigureConfig(PredictOptions):
    """``flexunet-figure``: which images, how large, where to."""

    split: str = "test"  # train | valid | test | all
    stems: list[str] = field(default_factory=list)  # empty: the first num_images of the split
    num_images: int = 4
    cell_width: int = 192  # pixels per column
    colors: int | None = 256  # PNG palette size; null: full colour
    output: str = "${paths.run_dir}/figure.png"
    # more runs or checkpoints: a model-comparison figure (one row per model) instead
    compare: list[str] = field(default_factory=list)


@dataclass
class FigureJobConfig:
    ckpt_path: Any = MISSING  # a checkpoint, a run or sweep directory, or a list of runs
    figure: FigureConfig = field(default_factory=FigureConfig)
    data: DataConfig = field(default_factory=DataConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    task_name: str = "figure"


@dataclass
class ExportConfig:
    """``flexunet-export``: the format, where to, and the check against the Keras model."""

    format: str = "saved_model"  # saved_model | onnx | litert
    output_dir: str = "${paths.run_dir}"
    overwrite: bool = False  # write into a non-empty output_dir (same names are replaced)
    images: str | None = None  # images to check on (file, folder or glob); null: export.split
    split: str = "test"  # train | valid | test | all
    num_images: int = at_least(1, 4)
    tolerance: float = at_least(0, 1e-4)  # max |difference| of probabilities from Keras
    class_names: list[str] = field(default_factory=list)  # empty: background, lesion / class_N


@dataclass
class ExportJobConfig:
    ckpt_path: str = MISSING
    export: ExportConfig = field(default_factory=ExportConfig)
    data: DataConfig = field(default_factory=DataConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    task_name: str = "export"


@dataclass
class ScoreJobConfig:
    pred_dir: str = MISSING  # predicted masks
    gt_dir: str = MISSING  # ground-truth masks, paired with the predictions by file stem
    mask_suffixes: list[str] = field(default_factory=list)
    paths: PathsConfig = field(default_factory=PathsConfig)
    task_name: str = "score"


@dataclass
class BenchModelConfig:
    """One model of ``flexunet-bench``: the composed model, or the model config ``config``,
    with the keys of ``model`` replaced."""

    config: str | None = None  # a conf/model option (e.g. attention_unet); null: the composed
    model: dict[str, Any] = field(default_factory=dict)  # e.g. {image_width: 256, num_layers: 6}
    images: int = 48  # training images per timed epoch (whole batches; pairs reused if fewer)


@dataclass
class BenchEpochRateConfig:
    """Whole epochs against their training steps: flexunet-train's fit with every callback."""

    train_images: int = at_least(1, 135)  # PH2's training split at 0.9
    valid_images: int = at_least(1, 15)
    epochs: int = at_least(2, 4)  # the first is not counted


@dataclass
class BenchConfig:
    models: dict[str, BenchModelConfig] = field(default_factory=dict)  # the first is the primary
    # the model axis: conf/model options timed after `models`, each named as its config
    zoo: list[str] = field(default_factory=list)
    zoo_images: int = at_least(1, 16)  # training images per timed epoch of each zoo model
    rounds: int = 3  # alternating timed passes (pipeline, real fit, in-memory fits); best kept
    rss_images: int = 32  # N: peak RSS of training on N and 4N images, a fresh process each
    infer_dir: str = MISSING  # images for the inference timing (any size; 600x450 HAM10000)
    infer_images: int = 6
    infer_reps: int = 3
    callbacks: list[str] = field(default_factory=list)  # names in train.callbacks to time
    callback_epochs: int = 3  # per fit; the first epoch of each fit is not counted
    callback_steps: int = 4  # training steps per epoch (validation: half as many)
    epoch_rate: BenchEpochRateConfig = field(default_factory=BenchEpochRateConfig)
    subprocess_timeout: int = 600


@dataclass
class BenchJobConfig:
    model: Any = None
    data: DataConfig = field(default_factory=DataConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    task_name: str = "bench"
    seed: int = 137


def register_configs() -> None:
    """Register the schemas; idempotent, so in-process sweeps may call it again."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainJobConfig)
    cs.store(name="prepare_schema", node=PrepareJobConfig)
    cs.store(name="evaluate_schema", node=EvaluateJobConfig)
    cs.store(name="infer_schema", node=InferJobConfig)
    cs.store(name="score_schema", node=ScoreJobConfig)
    cs.store(name="figure_schema", node=FigureJobConfig)
    cs.store(name="bench_schema", node=BenchJobConfig)
    cs.store(name="export_schema", node=ExportJobConfig)


# --- checking a composed config -----------------------------------------------------------

#: Hydra's own keys of an instantiate node; never passed to the target.
INSTANTIATE_KEYS = frozenset({"_target_", "_convert_", "_recursive_", "_partial_", "_args_"})


def _unknown(key: str, path: str, valid: Iterable[str], owner: str) -> str:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {path}{close[0]}? " if close else ""
    return f"unknown key {path}{key} ({hint}{owner} takes: {', '.join(valid)})"


def _target_parameters(target: str) -> set[str] | None:
    """The keyword arguments ``target`` accepts, or None when it takes ``**kwargs`` (such a
    target checks its arguments itself, as Keras' classes do)."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception as exc:  # ImportError, AttributeError, ...: the message says which
        raise ConfigError(f"_target_: {target} cannot be imported ({exc})") from None
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def config_problems(node: Any, path: str = "") -> list[str]:
    """Every unknown key and out-of-range value in a composed config, one message each.

    A node typed by a schema dataclass takes its fields only (Hydra adds a ``+key`` even to
    a typed node, so the schema alone does not refuse it) and each field's ``min``; a node
    with a ``_target_`` takes the target's parameters when its signature lists them all.
    Nothing is resolved, so no interpolation needs Hydra's runtime.
    """
    if isinstance(node, ListConfig):
        items = (config_problems(node._get_node(i), f"{path}{i}.") for i in range(len(node)))
        return [problem for found in items for problem in found]
    if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
        return []
    problems: list[str] = []
    # A config composed with Hydra's own node (tests, compose API) is checked without it.
    keys = [str(k) for k in node.keys() if path or k != "hydra"]
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        fields = {f.name: f for f in dataclasses.fields(schema)}
        for key in keys:
            if key not in fields:
                problems.append(_unknown(key, path, fields, path.rstrip(".") or "the config"))
                continue
            minimum = fields[key].metadata.get("min")
            value = node._get_node(key)._value()
            if minimum is not None and isinstance(value, int | float) and value < minimum:
                problems.append(f"{path}{key}={value}: must be at least {minimum}")
    elif "_target_" in keys:
        target = str(node._get_node("_target_")._value())
        accepted = _target_parameters(target)
        if accepted is not None:
            problems += [
                _unknown(key, path, accepted, target)
                for key in keys if key not in accepted and key not in INSTANTIATE_KEYS
            ]
    for key in keys:
        problems += config_problems(node._get_node(key), f"{path}{key}.")
    return problems


def check_config(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` that names every unknown key and out-of-range value."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
