"""The measurements behind ``flexunet-bench`` (entry point: :mod:`flexunet.commands.bench`).

Everything is timed on the objects ``flexunet-train`` uses: its pipeline
(:func:`flexunet.data.pipeline.make_dataset`), its compiled model
(:func:`flexunet.training.fit.compile_model`) and its callbacks. Repeated measurements alternate
(pipeline, real fit, in-memory fits, pipeline, ...) and the fastest of each kind is kept: on a
shared machine the fastest pass is the one least disturbed by other processes, and
alternating keeps slow drifts in the machine load out of the ratios.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from PIL import Image

from flexunet.data.masks import parse_rgb_map
from flexunet.data.pairing import Pair, list_image_files
from flexunet.data.pipeline import DecodedCache, load_arrays
from flexunet.data.sources import SyntheticSource, split_pairs
from flexunet.data.validate import check_pairs, load_image_rgb, raise_if_problems
from flexunet.errors import ConfigError, DataError
from flexunet.inference.options import PredictOptions
from flexunet.inference.predictor import predict_probabilities, to_class_map
from flexunet.runs.job import prepare_run_dir
from flexunet.training.build import build_callbacks, build_dataset, compile_model, model_size
from flexunet.training.runtime import (
    choose_precision,
    configure_runtime,
    peak_rss_mib,
    reset_peak_rss,
    tensorflow_importable,
)

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)

#: Keys of benchmark.json (primary model size) that every run writes as finite numbers.
KEYS = (
    "overhead_ratio", "train_img_s", "model_img_s", "pipeline_img_s", "pipeline_headroom",
    "rss_mb_n", "rss_mb_4n", "infer_ms", "infer_tta_ms", "callbacks_s_per_epoch",
    "steps_img_s", "epoch_img_s", "epoch_to_steps",
    "pipeline_img_s_tf_data", "pipeline_img_s_py_dataset",
)
#: Size of the images written when ``bench.infer_dir`` does not exist (HAM10000's 600x450).
SYNTHETIC_INFER_SIZE = (600, 450)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch: training, validation and the other callbacks' epoch work.

    Epoch ``i`` lasts from its ``on_epoch_begin`` to the next epoch's (the last one to the end
    of training), so it includes every callback's ``on_epoch_end``; ``train_s`` is the part up
    to the epoch's last training step. With ``output`` both are written there as JSON
    ``{"epoch_s": [...], "train_s": [...]}`` when training ends. In ``flexunet-train``:
    ``+train.callbacks.timer._target_=flexunet.bench.measure.EpochTimer``.
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__()
        self.output = Path(output) if output else None
        self.starts: list[float] = []
        self.last_steps: list[float] = []
        self.end: float | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.starts, self.last_steps, self.end = [], [], None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.starts.append(time.perf_counter())
        self.last_steps.append(self.starts[-1])

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.last_steps[-1] = time.perf_counter()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.end = time.perf_counter()
        if self.output is not None:
            self.output.write_text(json.dumps({"epoch_s": self.epoch_s, "train_s": self.train_s}))

    @property
    def epoch_s(self) -> list[float]:
        """Seconds per finished epoch."""
        marks = self.starts + ([self.end] if self.end is not None else [])
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]

    @property
    def train_s(self) -> list[float]:
        """Seconds from each finished epoch's start to its last training step."""
        return [b - a for a, b in zip(self.starts, self.last_steps, strict=True)][
            : len(self.epoch_s)
        ]


# --------------------------------------------------------------------------- inputs


def _plain(node: Any) -> Any:
    """A config node as plain resolved Python (JSON-ready); other values unchanged."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def cycle(pairs: Sequence[Pair], n: int) -> list[Pair]:
    """``n`` pairs, reusing ``pairs`` in order when there are fewer (files are re-read)."""
    return [pairs[i % len(pairs)] for i in range(n)]


def bench_pairs(cfg: DictConfig) -> tuple[list[Pair], str]:
    """All pairs of ``data.source`` (all splits, at most ``data.limit``) and a description.

    Falls back to 32 synthetic pairs, with a warning, when the source's folder is missing.
    With ``data.check`` every pair is validated first, as ``flexunet-train`` does.
    """
    try:
        source = instantiate(cfg.data.source, _convert_="all")
        pairs = split_pairs(source, "all", cfg.data.limit)
    except DataError as err:
        log.warning("%s; benchmarking on synthetic data instead", err)
        source = SyntheticSource(Path(cfg.paths.data_dir) / "synthetic", count=32)
        pairs = split_pairs(source, "all", cfg.data.limit)
    if cfg.data.check:
        problems = check_pairs(
            pairs, parse_rgb_map(cfg.mask.rgb_map), cfg.mask.tolerance,
            max_pixels=cfg.data.max_pixels, threshold=cfg.mask.threshold,
        )
        raise_if_problems(problems, "data check before benchmarking")
    return pairs, f"{len(pairs)} pairs from {source.root}"


def inference_images(cfg: DictConfig, run_dir: Path) -> tuple[list[Path], str]:
    """Up to ``bench.infer_images`` image files from ``bench.infer_dir``.

    When the folder is missing, random 600x450 JPEGs are written to ``run_dir`` (a warning
    says so): the timing depends on the image size, not on its content.
    """
    count = cfg.bench.infer_images
    try:
        paths = list_image_files(cfg.bench.infer_dir, "image")[:count]
    except DataError as err:
        log.warning("%s; timing inference on random %dx%d images", err, *SYNTHETIC_INFER_SIZE)
        paths = []
    if paths:
        return paths, f"{len(paths)} images from {cfg.bench.infer_dir}"
    folder = run_dir / "infer_images"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    width, height = SYNTHETIC_INFER_SIZE
    for i in range(max(count, 1)):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"random_{i}.jpg", quality=90)
    return sorted(folder.glob("*.jpg")), f"random {width}x{height} images"


def model_config(name: str) -> DictConfig:
    """The ``model`` node of conf/model/NAME.yaml as ``model=NAME`` composes it (unresolved:
    ``num_classes`` follows the job's ``mask``)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException

    from flexunet.commands import CONFIG_DIR

    try:
        if GlobalHydra.instance().is_initialized():  # inside flexunet-bench's @hydra.main
            return compose("bench", overrides=[f"model={name}"]).model
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            return compose("bench", overrides=[f"model={name}"]).model
    except MissingConfigException:
        options = sorted(p.stem for p in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
        raise ConfigError(
            f"bench: no model config {name!r}; use one of {', '.join(options)}"
        ) from None


def model_variant(cfg: DictConfig, overrides: dict, config: str | None = None) -> DictConfig:
    """A copy of the job config whose ``model`` is the model config ``config`` (conf/model/,
    null: the composed one) with the keys in ``overrides`` replaced (a key that model config
    does not have is an error)."""
    job = copy.deepcopy(cfg)
    if config is not None:
        with open_dict(job):
            job.model = model_config(config)
    for key, value in overrides.items():
        if key not in job.model:
            raise ConfigError(
                f"bench.models.*.model.{key}: the model config has no key {key!r} "
                f"(it has {', '.join(job.model)})"
            )
        OmegaConf.update(job, f"model.{key}", _plain(value), merge=False)
    return job


def model_specs(bench: DictConfig) -> dict[str, DictConfig]:
    """``bench.models`` followed by one entry per name of ``bench.zoo`` (that model config,
    ``bench.zoo_images`` images; a name already in ``bench.models`` is an error)."""
    specs = dict(bench.models)
    for name in bench.zoo:
        if name in specs:
            raise ConfigError(f"bench.zoo: {name!r} is also a key of bench.models; drop one")
        specs[name] = OmegaConf.create({"config": name, "model": {}, "images": bench.zoo_images})
    return specs


def dataset(job: DictConfig, pairs: Sequence[Pair], *, train: bool, repeat: bool = False):
    """flexunet-train's dataset for ``pairs``: augmented and shuffled when ``train``."""
    cache = DecodedCache.of_mib(job.data.cache_mb)
    return build_dataset(job, list(pairs), train=train, repeat=repeat, cache=cache)


def in_memory(job: DictConfig, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """The pairs decoded and resized as the pipeline does, without augmentation:
    float32 images and the model's targets, for the in-memory reference fits."""
    images, masks = load_arrays(
        pairs, model_size(job), parse_rgb_map(job.mask.rgb_map), job.mask.tolerance,
        job.data.max_pixels, job.mask.threshold,
    )
    classes = job.mask.num_classes
    if classes == 1:
        return images, (masks[..., None] > 0).astype(np.float32)
    return images, np.eye(classes, dtype=np.float32)[masks]


def _seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _wall_and_cpu(work: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process (all threads) spent in ``work()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


# --------------------------------------------------------------------------- measurements


def in_memory_dataset(x: np.ndarray, y: np.ndarray, batch: int, seed: int) -> tf.data.Dataset:
    """Tensors held in memory, shuffled and batched, with the pipeline's fixed tf.data
    options (no autotuning): the model's input at no per-image cost."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.batch(batch).prefetch(2).with_options(options)


def batches(ds: Any) -> Iterator:
    """The batches of one pass over a tf.data dataset or a Keras PyDataset, read as
    ``model.fit`` reads them (a PyDataset through Keras' own adapter: its worker threads and
    prefetch queue)."""
    if isinstance(ds, keras.utils.PyDataset):
        # Keras' public API iterates a PyDataset only inside fit/predict; its adapter is the
        # same reader without a model.
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        adapter = PyDatasetAdapter(ds, shuffle=False)
        yield from adapter.get_numpy_iterator()
        adapter.on_epoch_end()
    else:
        yield from ds


def measure_loaders(job: DictConfig, pairs: Sequence[Pair], rounds: int) -> dict:
    """Images/s of one pass of each ``data.loader`` (tf_data only where TensorFlow can be
    imported) over ``pairs``, training-time augmentation included, best of ``rounds`` after
    a first pass that fills the decoded-pair cache."""
    result = {}
    loaders = ("tf_data", "py_dataset") if tensorflow_importable() else ("py_dataset",)
    for loader in loaders:
        variant = copy.deepcopy(job)
        variant.data.loader = loader
        ds = dataset(variant, pairs, train=True)
        passes = [_seconds(lambda ds=ds: sum(1 for _ in batches(ds))) for _ in range(rounds + 1)]
        result[f"pipeline_img_s_{loader}"] = len(pairs) / min(passes[1:])
    return result


def measure_training(
    job: DictConfig, pairs: Sequence[Pair], images: int, rounds: int
) -> tuple[dict, keras.Model]:
    """Images/s of the real pipeline alone, of training through it, and of the same model
    fed the same images from memory; and the compiled model.

    Two in-memory feeds: a tf.data dataset of tensors (the model's own rate, the reference of
    ``overhead_ratio``) and a bare ``model.fit(x, y)`` on numpy arrays, whose Keras adapter
    autotunes tf.data (``overhead_ratio_numpy_fit``). ``overhead_ratio_cpu`` compares the CPU
    seconds of the process instead of wall time: the pipeline's extra work, which other
    processes on the machine cannot hide or inflate the way they do wall time. The pipeline's
    first pass decodes every image (``pipeline_cold_*``); later passes, like training epochs
    after the first, read decoded pairs from ``data.cache_mb`` when they fit.
    """
    batch = job.train.batch_size
    n = max(1, images // batch) * batch  # whole batches: no retracing for a short last one
    used = cycle(pairs, n)
    ds = dataset(job, used, train=True)
    x, y = in_memory(job, used)
    model = compile_model(job)
    model.fit(ds, steps_per_epoch=1, verbose=0, shuffle=False)  # trace the step
    model.fit(x[:batch], y[:batch], batch_size=batch, verbose=0)
    work = {
        "pipeline": lambda: sum(1 for _ in batches(ds)),
        "real": lambda: model.fit(ds, epochs=1, verbose=0, shuffle=False),
        "memory": lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0),
        "numpy": lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0),
    }
    if tensorflow_importable():  # tensors in memory: the model's rate without Keras' adapter
        memory = in_memory_dataset(x, y, batch, job.seed)
        model.fit(memory.take(1), verbose=0, shuffle=False)
        work["memory"] = lambda: model.fit(memory, epochs=1, verbose=0, shuffle=False)
    times: dict[str, list[tuple[float, float]]] = {kind: [] for kind in work}
    for _ in range(rounds):
        for kind, run in work.items():
            times[kind].append(_wall_and_cpu(run))
    best = {kind: min(wall for wall, _ in values) for kind, values in times.items()}
    cpu = {kind: min(c for _, c in values) for kind, values in times.items()}
    size = model_size(job)
    return {
        "input": f"{size[0]}x{size[1]}",
        "params": int(model.count_params()),
        "images": n,
        "batch_size": batch,
        "train_img_s": n / best["real"],
        "model_img_s": n / best["memory"],
        "numpy_fit_img_s": n / best["numpy"],
        "pipeline_img_s": n / best["pipeline"],
        "pipeline_cold_img_s": n / times["pipeline"][0][0],
        "overhead_ratio": best["real"] / best["memory"],
        "overhead_ratio_numpy_fit": best["real"] / best["numpy"],
        "overhead_ratio_cpu": cpu["real"] / cpu["memory"],
        "pipeline_headroom": best["memory"] / best["pipeline"],
        "pipeline_cpu_ms": 1000 * cpu["pipeline"] / n,
        "pipeline_cold_cpu_ms": 1000 * times["pipeline"][0][1] / n,
        "model_cpu_ms": 1000 * cpu["memory"] / n,
        **measure_loaders(job, used, rounds),
    }, model


def measure_inference(model: keras.Model, paths: Sequence[Path], reps: int) -> dict:
    """Milliseconds per image, from the file to the class map at the image's size, through
    :func:`flexunet.inference.predictor.predict_probabilities`, without and with flip TTA
    (4 flips)."""
    result = {}
    for key, tta in (("infer_ms", None), ("infer_tta_ms", "flips")):
        options = PredictOptions(tta=tta)
        predict_probabilities(model, load_image_rgb(paths[0]), options)  # trace

        def one_pass(options: PredictOptions = options) -> None:
            for path in paths:
                to_class_map(predict_probabilities(model, load_image_rgb(path), options))

        result[key] = 1000 * min(_seconds(one_pass) for _ in range(reps)) / len(paths)
    return result


def _time_epoch_end(callbacks: list, totals: dict[str, float]) -> None:
    """Wrap each callback's ``on_epoch_end`` to add its seconds (after epoch 1) to ``totals``
    under its class name (``ModelCheckpoint_2`` for the second of a class)."""
    seen: dict[str, int] = {}
    for callback in callbacks:
        name, original = type(callback).__name__, callback.on_epoch_end
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}_{seen[name]}"

        def timed(epoch: int, logs: dict | None = None, _name=name, _original=original) -> None:
            start = time.perf_counter()
            _original(epoch, logs)
            if epoch > 0:
                totals[_name] = totals.get(_name, 0.0) + time.perf_counter() - start

        callback.on_epoch_end = timed


def measure_callbacks(
    model: keras.Model, job: DictConfig, pairs: Sequence[Pair], bench: DictConfig, out_dir: Path
) -> dict:
    """Seconds per epoch that the ``bench.callbacks`` add to training ``model``: epochs timed
    with and without them (median, first epoch of each fit left out), and each callback's
    ``on_epoch_end``."""
    job = copy.deepcopy(job)
    missing = [name for name in bench.callbacks if name not in job.train.callbacks]
    if missing:
        raise ConfigError(
            f"bench.callbacks: {', '.join(missing)} not in train.callbacks "
            f"(it has {', '.join(job.train.callbacks)})"
        )
    prepare_run_dir(out_dir, resuming=False)
    with open_dict(job):
        job.paths.run_dir = str(out_dir)
        job.train.callbacks = {
            name: OmegaConf.to_container(job.train.callbacks[name]) for name in bench.callbacks
        }
    # whole backend calls: Keras runs model.steps_per_execution steps per call on these
    # endless datasets, whatever steps_per_epoch says
    per_call, batch = model.steps_per_execution, job.train.batch_size
    steps = math.ceil(bench.callback_steps / per_call) * per_call
    valid_steps = math.ceil(max(1, steps // 2) / per_call) * per_call
    train_ds = dataset(job, cycle(pairs, steps * batch), train=True, repeat=True)
    valid_ds = dataset(job, cycle(pairs[::-1], valid_steps * batch), train=False, repeat=True)
    images, masks = load_arrays(
        pairs[:8], model_size(job), parse_rgb_map(job.mask.rgb_map), job.mask.tolerance,
        job.data.max_pixels, job.mask.threshold,
    )
    epoch_s: dict[bool, list[float]] = {False: [], True: []}
    hooks: dict[str, float] = {}
    for _ in range(bench.rounds):
        for with_callbacks in (False, True):
            callbacks = build_callbacks(job, images, masks) if with_callbacks else []
            _time_epoch_end(callbacks, hooks)
            timer = EpochTimer()
            model.fit(
                train_ds, epochs=bench.callback_epochs, steps_per_epoch=steps,
                validation_data=valid_ds, validation_steps=valid_steps,
                callbacks=[timer, *callbacks], verbose=0, shuffle=False,
            )
            epoch_s[with_callbacks] += timer.epoch_s[1:]
    counted = bench.rounds * (bench.callback_epochs - 1)
    without, with_ = statistics.median(epoch_s[False]), statistics.median(epoch_s[True])
    return {
        "callbacks": list(bench.callbacks),
        "epoch_s_without_callbacks": without,
        "epoch_s_with_callbacks": with_,
        "callbacks_s_per_epoch": with_ - without,
        "callbacks_on_epoch_end_s": {k: v / counted for k, v in hooks.items()},
    }


def worker_config(job: DictConfig) -> dict:
    """The resolved parts of a job config that :func:`rss_job` needs, as plain Python."""
    return {
        "model": _plain(job.model),
        # all of train but its callbacks, which the worker does not build and whose paths
        # need Hydra's resolvers: compile_model reads a growing set of train keys
        "train": {k: _plain(job.train[k]) for k in job.train if k != "callbacks"},
        "data": {
            key: _plain(job.data[key])
            for key in ("loader", "augment", "num_parallel_calls", "prefetch", "cache_mb",
                        "max_pixels")
        },
        "mask": _plain(job.mask),
        "runtime": _plain(job.runtime),
        "seed": job.seed,
    }


def rss_job() -> None:
    """Subprocess body: read ``{"cfg", "pairs"}`` JSON from stdin, train one epoch through the
    streaming pipeline, print ``{"peak_rss_mb": ...}`` as the last stdout line.

    Two warm-up steps first trace the model and fill the allocators (the same for any number
    of images); where the kernel can restart its peak count (Linux), the peak is then that
    of the epoch, else of the whole process."""
    spec = json.load(sys.stdin)
    cfg = OmegaConf.create(spec["cfg"])
    configure_runtime(**cfg.runtime)
    keras.mixed_precision.set_global_policy(choose_precision(cfg.train.mixed_precision)[0])
    keras.utils.set_random_seed(cfg.seed)
    pairs = [Pair(stem, Path(image), Path(mask)) for stem, image, mask in spec["pairs"]]
    model = compile_model(cfg)
    ds = dataset(cfg, pairs, train=True)
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    reset_peak_rss()
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    print(json.dumps({"peak_rss_mb": peak_rss_mib()}))


def measure_rss(
    job: DictConfig, pairs: Sequence[Pair], counts: Sequence[int], timeout: float
) -> list[float]:
    """Peak RSS (MiB) of fresh processes that each train one epoch on ``counts[i]`` images.

    The processes run side by side: a peak does not depend on the time it takes to reach.
    """
    code = "from flexunet.bench.measure import rss_job; rss_job()"
    procs = []
    for n in counts:
        spec = {
            "cfg": worker_config(job),
            "pairs": [[p.stem, str(p.image), str(p.mask)] for p in cycle(pairs, n)],
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        procs.append((n, proc, json.dumps(spec)))
    peaks = []
    for n, proc, spec in procs:
        try:
            out, err = proc.communicate(spec, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError(f"RSS worker ({n} images) took over {timeout} s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"RSS worker ({n} images) failed:\n{err[-3000:]}")
        peaks.append(float(json.loads(out.strip().splitlines()[-1])["peak_rss_mb"]))
    return peaks


def machine_info() -> dict:
    """CPU, Keras backend, TensorFlow version and the settings that decide its speed."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "backend": keras.backend.backend(),
        "devices": keras.distribution.list_devices(),
        "keras": keras.__version__,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }
    if tensorflow_importable():
        import tensorflow as tf

        info.update(
            tensorflow=tf.__version__,
            intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
            inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        )
    return info


def training_flops_per_image(model: keras.Model) -> float:
    """FLOPs of one training image (forward and backward) of ``model``, counted from its
    layers: the multiply-adds of every convolution (also transposed), depthwise convolution
    and dense layer, times 2 (a multiply-add is 2 FLOPs), times 3 for training: the backward
    pass computes the gradient with respect to the inputs and to the weights, each as many
    FLOPs as the forward pass (the usual 3x rule; it overcounts the first layer's input
    gradient, which is not needed). Pooling, activations, normalisation and the optimizer are
    left out: they are not matmul work and cost well under 1% of it in a UNet."""
    macs = 0
    for layer in model._flatten_layers(include_self=False):
        if not hasattr(layer, "kernel") or not getattr(layer, "built", False):
            continue
        out_shape = layer.output.shape
        in_shape = layer.input.shape
        kernel = tuple(layer.kernel.shape)
        if isinstance(layer, keras.layers.Conv2DTranspose):
            macs += math.prod(in_shape[1:3]) * math.prod(kernel)  # every input pixel, kernel
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            macs += math.prod(out_shape[1:]) * math.prod(kernel[:2])
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            macs += math.prod(out_shape[1:-1]) * math.prod(kernel)
    return 3 * 2 * float(macs)


def bf16_available() -> bool:
    """Whether this machine computes bfloat16 in hardware: a CPU with AMX-BF16 or AVX512-BF16
    (a GPU run of the benchmark reports float32 only)."""
    from flexunet.training.runtime import BF16_CPU_FLAGS, cpu_flags, visible_gpu_ids

    return not visible_gpu_ids() and bool(cpu_flags() & set(BF16_CPU_FLAGS))


def matmul_timer(dtype: str, size: int = 2048) -> Callable[[], float]:
    """A function that times one product of two ``size`` x ``size`` matrices in ``dtype``
    (float32 or bfloat16) and returns its rate in GFLOP/s: the machine's reference rate for
    the utilisation of training, on the device (and thread pools) training uses. The first
    product (kernel choice, allocation) is done here."""
    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((size, size)), dtype=dtype)
    b = keras.ops.convert_to_tensor(rng.standard_normal((size, size)), dtype=dtype)

    def product() -> None:
        corner = keras.ops.cast(keras.ops.matmul(a, b)[0, 0], "float32")  # NumPy has no bf16
        keras.ops.convert_to_numpy(corner)  # waits for the result

    product()
    return lambda: 2 * size**3 / _seconds(product) / 1e9


def matmul_peak_gflops(dtype: str, size: int = 2048, reps: int = 8) -> float:
    """The best rate of ``reps`` timed products (:func:`matmul_timer`), in GFLOP/s."""
    timer = matmul_timer(dtype, size)
    return max(timer() for _ in range(reps))


def measure_utilisation(
    job: DictConfig, pairs: Sequence[Pair], images: int, rounds: int
) -> dict:
    """Training rate on in-memory tensors and the share of the measured matmul peak it uses,
    per precision: float32, and mixed_bfloat16 where the CPU has bfloat16 units. Epochs and
    matmuls alternate, ``rounds`` times, and the best of each is kept.

    ``utilisation = img/s x training FLOPs per image / matmul GFLOP/s`` of the same dtype
    (float32 for float32 training, bfloat16 for mixed_bfloat16). The job's own precision
    policy is restored afterwards."""
    batch = job.train.batch_size
    n = max(1, images // batch) * batch
    x, y = in_memory(job, cycle(pairs, n))
    memory = in_memory_dataset(x, y, batch, job.seed)
    policy = keras.mixed_precision.global_policy()
    precisions = {"float32": "float32"}
    if bf16_available():
        precisions["mixed_bfloat16"] = "bfloat16"
    result: dict[str, Any] = {}
    try:
        for name, dtype in precisions.items():
            keras.mixed_precision.set_global_policy(name)
            model = compile_model(job)
            flops = training_flops_per_image(model)
            model.fit(memory.take(1), verbose=0, shuffle=False)  # trace
            matmul = matmul_timer(dtype)
            seconds, peak = math.inf, 0.0
            for _ in range(rounds):  # alternate, so both see the same machine load
                seconds = min(seconds, _seconds(
                    lambda m=model: m.fit(memory, epochs=1, verbose=0, shuffle=False)
                ))
                peak = max([peak, *(matmul() for _ in range(4))])
            rate = n / seconds
            result[name] = {
                "model_img_s": rate, "train_gflop_per_image": flops / 1e9,
                "achieved_gflops": rate * flops / 1e9, "matmul_peak_gflops": peak,
                "utilisation": rate * flops / 1e9 / peak,
            }
            del model
            keras.backend.clear_session()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return {"utilisation": result}


def measure_epoch_rates(
    job: DictConfig, pairs: Sequence[Pair], spec: DictConfig, out_dir: Path
) -> dict:
    """Whole-epoch rate against the training-steps rate of flexunet-train's own fit: the
    job's dataset pipeline, every ``train.callbacks`` entry (writing into ``out_dir``), a
    validation split, ``spec.epochs`` epochs of which the first is not counted (median).

    ``steps_img_s`` = training images / seconds from an epoch's start to its last training
    step; ``epoch_img_s`` = training images / seconds of the whole epoch (validation and every
    callback's epoch-end work included); ``epoch_to_steps`` = their ratio (1: an epoch costs
    only its steps)."""
    job = copy.deepcopy(job)
    prepare_run_dir(out_dir, resuming=False)
    with open_dict(job):
        job.paths.run_dir = str(out_dir)
    batch = job.train.batch_size
    n_train = max(1, spec.train_images // batch) * batch
    train_pairs = cycle(pairs, n_train)
    valid_pairs = cycle(pairs[::-1], max(1, spec.valid_images))
    train_ds = dataset(job, train_pairs, train=True)
    valid_ds = dataset(job, valid_pairs, train=False)
    images, masks = load_arrays(
        valid_pairs[:8], model_size(job), parse_rgb_map(job.mask.rgb_map), job.mask.tolerance,
        job.data.max_pixels,
    )
    model = compile_model(job)
    timer, hooks = EpochTimer(), {}
    callbacks = build_callbacks(job, images, masks)
    _time_epoch_end(callbacks, hooks)
    model.fit(
        train_ds, epochs=spec.epochs, validation_data=valid_ds,
        callbacks=[timer, *callbacks], verbose=0, shuffle=False,
    )
    steps = statistics.median(timer.train_s[1:])
    epoch = statistics.median(timer.epoch_s[1:])
    del model
    keras.backend.clear_session()
    return {
        "epoch_rate_images": [n_train, len(valid_pairs)],
        "steps_img_s": n_train / steps,
        "epoch_img_s": n_train / epoch,
        "epoch_to_steps": steps / epoch,
        "epoch_end_s": {k: v / (spec.epochs - 1) for k, v in hooks.items()},
    }


# --------------------------------------------------------------------------- the run


def format_table(report: dict) -> str:
    """The report as a text table: one row per model size, then memory and callbacks."""
    lines = [
        f"{'model':<15} {'input':>7} {'params':>10} {'train img/s':>11} {'model img/s':>11} "
        f"{'overhead':>8} {'(CPU s)':>7} {'fit(x,y)':>8} {'pipeline img/s':>14} {'(cold)':>7} "
        f"{'headroom':>8} {'infer ms':>8} {'TTA ms':>7}"
    ]
    for name, r in report["models"].items():
        lines.append(
            f"{name:<15} {r['input']:>7} {r['params']:>10,} {r['train_img_s']:>11.2f} "
            f"{r['model_img_s']:>11.2f} {r['overhead_ratio']:>8.3f} "
            f"{r['overhead_ratio_cpu']:>7.3f} {r['numpy_fit_img_s']:>8.2f} "
            f"{r['pipeline_img_s']:>14.1f} {r['pipeline_cold_img_s']:>7.1f} "
            f"{r['pipeline_headroom']:>7.1f}x "
            f"{r['infer_ms']:>8.1f} {r['infer_tta_ms']:>7.1f}"
        )
    hooks = ", ".join(f"{k} {v:.3f}" for k, v in report["callbacks_on_epoch_end_s"].items())
    lines += [
        "",
        f"peak RSS ({report['primary']}): {report['rss_mb_n']:.0f} MiB training on "
        f"{report['rss_images']} images, {report['rss_mb_4n']:.0f} MiB on "
        f"{4 * report['rss_images']} (in-memory arrays of those would be "
        f"{report['arrays_mb_4n']:.0f} MiB)",
        f"callbacks ({report['primary']}): {report['callbacks_s_per_epoch']:+.3f} s/epoch "
        f"(epoch {report['epoch_s_without_callbacks']:.2f} s without, "
        f"{report['epoch_s_with_callbacks']:.2f} s with); on_epoch_end s: {hooks}",
        f"whole epochs ({report['primary']}, {report['epoch_rate_images'][0]} training + "
        f"{report['epoch_rate_images'][1]} validation images, every train.callbacks entry): "
        f"{report['epoch_img_s']:.2f} img/s against {report['steps_img_s']:.2f} img/s of the "
        f"training steps alone, ratio {report['epoch_to_steps']:.3f} "
        f"(precision {report['precision']})",
        *(
            f"{name}: {u['train_gflop_per_image']:.2f} GFLOP per training image (forward + "
            f"backward), {u['model_img_s']:.2f} img/s = {u['achieved_gflops']:.0f} GFLOP/s, "
            f"{100 * u['utilisation']:.0f}% of the measured matmul peak "
            f"({u['matmul_peak_gflops']:.0f} GFLOP/s)"
            for name, u in report["utilisation"].items()
        ),
        "input pipeline alone (images/s, training augmentation): " + ", ".join(
            f"{key.removeprefix('pipeline_img_s_')} {value:.1f}"
            for key, value in report["models"][report["primary"]].items()
            if key.startswith("pipeline_img_s_")
        ),
        f"backend {report['machine']['backend']}; "
        f"load average {report['load_before'][0]:.2f} before, {report['load_after'][0]:.2f} "
        f"after; {report['machine']['cpu_count']} CPUs; oneDNN "
        f"{report['machine']['TF_ENABLE_ONEDNN_OPTS']}",
    ]
    return "\n".join(lines)


def run_benchmark(cfg: DictConfig, run_dir: Path) -> dict:
    """Measure every model of ``bench.models`` and ``bench.zoo``; write
    ``run_dir/benchmark.json``."""
    bench = cfg.bench
    specs = model_specs(bench)
    if not specs:
        raise ConfigError("bench.models and bench.zoo are empty: name at least one model")
    if bench.rounds < 1 or bench.callback_epochs < 2:
        raise ConfigError("bench.rounds must be >= 1 and bench.callback_epochs >= 2")
    precision, why = choose_precision(cfg.train.mixed_precision)
    log.info("precision: %s (%s)", precision, why)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        return _run_benchmark(cfg, run_dir, precision, specs)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _run_benchmark(
    cfg: DictConfig, run_dir: Path, precision: str, specs: dict[str, DictConfig]
) -> dict:
    bench = cfg.bench
    load_before = os.getloadavg()
    pairs, data = bench_pairs(cfg)
    infer_paths, infer_data = inference_images(cfg, run_dir)
    log.info("data: %s; inference: %s", data, infer_data)
    models: dict[str, dict] = {}
    primary = next(iter(specs))
    for name, spec in specs.items():
        job = model_variant(cfg, spec.model, spec.config)
        keras.utils.set_random_seed(cfg.seed)
        log.info("%s: timing training (%d images, %d rounds)", name, spec.images, bench.rounds)
        result, model = measure_training(job, pairs, spec.images, bench.rounds)
        result.update(measure_inference(model, infer_paths, bench.infer_reps))
        if name == primary:
            log.info("%s: timing callbacks %s", name, list(bench.callbacks))
            result.update(measure_callbacks(model, job, pairs, bench, run_dir / "callbacks"))
        del model
        keras.backend.clear_session()
        if name == primary:
            log.info("%s: whole epochs against their training steps", name)
            result.update(measure_epoch_rates(job, pairs, bench.epoch_rate, run_dir / "epochs"))
            log.info("%s: FLOPs and the share of the measured matmul peak", name)
            result.update(measure_utilisation(job, pairs, spec.images, bench.rounds))
            n = bench.rss_images
            log.info("%s: peak RSS on %d and %d images (fresh processes)", name, n, 4 * n)
            rss_n, rss_4n = measure_rss(job, pairs, (n, 4 * n), bench.subprocess_timeout)
            width, height = model_size(job)
            per_image = width * height * (3 + max(2, job.mask.num_classes)) * 4
            result.update(
                rss_images=n, rss_mb_n=rss_n, rss_mb_4n=rss_4n,
                arrays_mb_4n=4 * n * per_image / 2**20,
            )
        models[name] = result
        log.info("%s: %s", name, json.dumps(result))
    report = {
        **{k: v for k, v in models[primary].items() if not isinstance(v, dict)},
        "callbacks_on_epoch_end_s": models[primary]["callbacks_on_epoch_end_s"],
        "utilisation": models[primary]["utilisation"],
        "precision": precision,
        "primary": primary,
        "models": models,
        "data": data,
        "inference_data": infer_data,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "machine": machine_info(),
    }
    bad = [k for k in KEYS if not math.isfinite(report[k])]
    if bad:
        raise RuntimeError(f"non-finite benchmark results: {bad}")
    (run_dir / "benchmark.json").write_text(json.dumps(report, indent=2))
    log.info("benchmark (%s):\n%s", run_dir / "benchmark.json", format_table(report))
    return report
