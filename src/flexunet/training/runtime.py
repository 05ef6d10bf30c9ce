"""The process: set-up before Keras or TensorFlow is imported or initialised, and its memory use.

Entry points call :func:`configure_environment` first thing in ``main()`` and
:func:`configure_runtime` once the config is composed, before anything imports Keras (the
Keras backend is fixed at that import); nothing here runs at import time. Every variable is
only a default: a value in the user's environment wins.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from flexunet.errors import ConfigError

log = logging.getLogger(__name__)

ENV_DEFAULTS = {
    # albumentations checks PyPI for a newer version at every import: the tool runs offline.
    "NO_ALBUMENTATIONS_UPDATE": "1",
    # Hide TensorFlow's C++ start-up chatter (CUDA probing on CPU machines, oneDNN notices).
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # oneDNN kernels: much faster training on x86 CPUs, where TensorFlow may leave them off
    # (docs/performance.md).
    "TF_ENABLE_ONEDNN_OPTS": "1",
    # logger=mlflow's default store is a local folder, which MLflow 3 refuses without this.
    "MLFLOW_ALLOW_FILE_STORE": "true",
}


#: Present when the NVIDIA driver is loaded (Linux).
NVIDIA_DRIVER = Path("/proc/driver/nvidia")
#: Without a driver TensorFlow's one C++ error at start-up is its CUDA probe ("failed call to
#: cuInit"), which no later setting can silence; level 3 hides C++ errors too (failures still
#: raise Python exceptions). With a driver, level 2 keeps them.
NO_DRIVER_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def configure_environment() -> None:
    """Set the project's environment defaults without overriding the user's own values."""
    defaults = ENV_DEFAULTS if NVIDIA_DRIVER.is_dir() else {**ENV_DEFAULTS, **NO_DRIVER_DEFAULTS}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


_tf_configured = False

#: ``runtime.backend`` values: the Keras backends the project supports.
BACKENDS = ("tensorflow", "jax")
#: KERAS_BACKEND as the user's environment had it when the command started (None: unset).
_user_backend: str | None = None
_user_backend_read = False


def select_backend(requested: str) -> str:
    """Make ``requested`` (``runtime.backend``) Keras' backend, unless the user's environment
    names one in ``KERAS_BACKEND`` (that wins). Returns the backend in use.

    Keras reads the variable once, at its first import: a process that already imported it
    (job 2 of an in-process sweep over ``runtime.backend``) cannot switch, which is an error.
    """
    global _user_backend, _user_backend_read
    if requested not in BACKENDS:
        raise ConfigError(f"runtime.backend={requested!r}: use one of {', '.join(BACKENDS)}")
    if not _user_backend_read:  # our own setting below must not pass for the user's
        _user_backend, _user_backend_read = os.environ.get("KERAS_BACKEND"), True
    wanted = _user_backend or requested
    if "keras" in sys.modules:
        actual = sys.modules["keras"].backend.backend()
        if actual != wanted:
            raise ConfigError(
                f"runtime.backend={wanted}: Keras already runs on {actual} in this process "
                "(an in-process sweep); sweep backends with hydra/launcher=joblib instead"
            )
        return actual
    os.environ["KERAS_BACKEND"] = wanted
    return wanted


def tensorflow_importable() -> bool:
    """Whether ``import tensorflow`` can work here (it is installed and not blocked)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Runtime:
    """What :func:`configure_runtime` set up: the backend and this process's place in a
    multi-process run (process 0 is the chief, which alone writes the run's files)."""

    backend: str
    process_id: int = 0
    num_processes: int = 1

    @property
    def is_chief(self) -> bool:
        return self.process_id == 0


def join_processes(
    backend: str, coordinator: str | None, num_processes: int | None, process_id: int | None
) -> Runtime:
    """Join a multi-process run: ``jax.distributed.initialize`` through Keras, with the
    explicit ``runtime.coordinator`` / ``num_processes`` / ``process_id``, or, when those are
    unset, what JAX detects by itself (SLURM). One process when neither applies."""
    explicit = [coordinator, num_processes, process_id]
    slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1") or 1)
    if all(v is None for v in explicit) and slurm_tasks <= 1:
        return Runtime(backend)
    if num_processes == 1:
        return Runtime(backend)
    if any(v is None for v in explicit) and slurm_tasks <= 1:
        raise ConfigError(
            "runtime.coordinator, runtime.num_processes and runtime.process_id go together "
            "(e.g. runtime.coordinator=localhost:12355 runtime.num_processes=2 "
            "runtime.process_id=0); under SLURM leave all three unset"
        )
    import jax
    import keras

    keras.distribution.initialize(coordinator, num_processes, process_id)
    return Runtime(backend, jax.process_index(), jax.process_count())


_runtime: Runtime | None = None


def current_runtime() -> Runtime:
    """What :func:`configure_runtime` set up in this process (one TensorFlow process if it
    has not run)."""
    return _runtime or Runtime("tensorflow")


def configure_runtime(
    backend: str = "tensorflow",
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    gpu_memory_growth: bool = True,
    gpu_per_job: bool = False,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    job_num: int = 0,
    distributed: bool = False,
) -> Runtime:
    """The ``runtime`` node applied, once per process: the Keras backend
    (:func:`select_backend`), with ``distributed`` the processes joined
    (:func:`join_processes`), GPU pinning and, on TensorFlow, its threads and memory growth
    (:func:`configure_tensorflow`). Call before anything imports Keras."""
    global _runtime
    backend = select_backend(backend)
    if ((num_processes or 1) > 1 or coordinator is not None) and (
        backend != "jax" or not distributed
    ):
        raise ConfigError(
            "several training processes (runtime.num_processes, runtime.coordinator) need "
            "runtime.backend=jax train.distribution=data_parallel (TensorFlow's multi-worker "
            "route does not work with Keras 3; see docs/distributed.md)"
        )
    if _runtime is not None and _runtime.backend == backend:
        return _runtime
    runtime = (
        join_processes(backend, coordinator, num_processes, process_id)
        if distributed else Runtime(backend)
    )
    if backend == "tensorflow":
        configure_tensorflow(
            intra_op_threads, inter_op_threads, gpu_memory_growth, gpu_per_job, job_num
        )
    elif gpu_per_job:  # JAX: threads and memory growth are XLA's (XLA_FLAGS, XLA_PYTHON_*)
        pin_gpu(job_num)
    _runtime = runtime
    return runtime


def visible_gpu_ids() -> list[str]:
    """GPUs this process may use, found without initialising CUDA: the inherited
    CUDA_VISIBLE_DEVICES, else the NVIDIA driver's list (Linux)."""
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    if inherited is not None:
        return [g for g in inherited.split(",") if g.strip()]
    driver = NVIDIA_DRIVER / "gpus"
    return [str(i) for i in range(len(list(driver.iterdir())))] if driver.is_dir() else []


def pin_gpu(job_num: int) -> None:
    """Restrict this process to GPU ``job_num % count`` via CUDA_VISIBLE_DEVICES; must run
    before TensorFlow initialises CUDA (configure_tensorflow calls it first)."""
    gpus = visible_gpu_ids()
    if not gpus:
        log.warning("runtime.gpu_per_job: no GPU found; running on the CPU")
        return
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus[job_num % len(gpus)]
    log.info("runtime.gpu_per_job: job %d uses GPU %s", job_num, gpus[job_num % len(gpus)])


def configure_tensorflow(
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    gpu_memory_growth: bool = True,
    gpu_per_job: bool = False,
    job_num: int = 0,
) -> None:
    """GPU pinning, threads and GPU memory growth, once per process (TensorFlow refuses
    later changes).

    In an in-process sweep job 2 onward finds TensorFlow initialised; the first job's
    settings then stay (a joblib worker keeps the GPU of the first job it ran).
    """
    global _tf_configured
    if _tf_configured:
        return
    if gpu_per_job:
        pin_gpu(job_num)
    import tensorflow as tf

    try:
        if gpu_memory_growth:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        if intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError as err:  # TensorFlow already initialised in this process
        log.warning("TensorFlow runtime settings not applied: %s", err)
    _tf_configured = True


#: ``train.mixed_precision`` values: ``auto`` or a keras.mixed_precision policy name.
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
#: /proc/cpuinfo flags of CPUs that compute bfloat16 in hardware (AMX tiles or AVX-512 BF16
#: dot products); elsewhere bfloat16 is emulated and slower than float32.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux; empty elsewhere)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def choose_precision(setting: str) -> tuple[str, str]:
    """The keras.mixed_precision policy for ``train.mixed_precision`` and why.

    ``auto``: ``mixed_bfloat16`` on a machine without a GPU whose CPU has bfloat16 units
    (:data:`BF16_CPU_FLAGS`), else ``float32``. On a GPU ``auto`` keeps float32: float16
    paid off there only at larger batches (docs/performance.md) and its accuracy on this
    task is unmeasured; choose ``mixed_float16`` for it. Any other value is used as given.
    """
    if setting not in PRECISIONS:
        hint = " (true was mixed_float16)" if setting.lower() in ("true", "false") else ""
        raise ConfigError(
            f"train.mixed_precision={setting}: use one of {', '.join(PRECISIONS)}{hint}"
        )
    if setting != "auto":
        return setting, "set by train.mixed_precision"
    if visible_gpu_ids():
        return "float32", "auto: a GPU is visible (choose mixed_float16 for float16 there)"
    found = sorted(cpu_flags() & set(BF16_CPU_FLAGS))
    if found:
        return "mixed_bfloat16", f"auto: the CPU has bfloat16 units ({', '.join(found)})"
    return "float32", "auto: no bfloat16 units on this CPU (amx_bf16 / avx512_bf16)"


def process_rss_mib() -> float | None:
    """Resident memory of this process in MiB (Linux; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def reset_peak_rss() -> bool:
    """Restart the kernel's count of this process's peak RSS (Linux); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (since :func:`reset_peak_rss` on Linux)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, else KiB
