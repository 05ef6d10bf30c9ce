"""Keras on JAX, with ``import tensorflow`` made impossible: train (py_dataset loader,
TensorBoard through the tensorboard package), resume, eval and infer; checkpoints evaluated on
the other backend; ``train.distribution=data_parallel`` over two host devices and over two
processes, trained weights compared with a one-device run.

Every JAX run is a subprocess (Keras' backend is fixed per process; this one runs TensorFlow).
The runs are as small as debug=fast allows: JAX on this CPU is about 2.5x slower than TF, and
compiling a step costs more than running it (a debug=fast run: 35 s without, 13 s with its
programs already compiled), so the module's subprocesses share one JAX compilation cache.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hydra.core.hydra_config import HydraConfig

from flexunet.errors import ConfigError
from tests.helpers import SHARED_DATA, train_fast_run

# No augmentation: the data-parallel runs must see exactly the batches of the one-device run.
# float32: the weights of runs over one and two devices agree to WEIGHT_ATOL only without
# bfloat16's rounding (auto picks bfloat16 on CPUs with AMX).
JAX_FAST = [
    "debug=fast", "data.source.count=24", "runtime.backend=jax", "data.augment=null",
    "train.verbose=0", "train.mixed_precision=float32",
]
# A meta-path finder that refuses tensorflow: what the lent GPU machines look like.
NO_TENSORFLOW = '''import sys


class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"{name} is blocked in this test (no TensorFlow)")
        return None


sys.meta_path.insert(0, _NoTensorFlow())
'''
# Weights of runs that saw the same global batches: equal but for the order of float sums.
WEIGHT_ATOL = 1e-5


def jax_env(tmp: Path, devices: int = 1) -> dict[str, str]:
    """The environment of a JAX subprocess without TensorFlow (``devices`` CPU devices)."""
    blocker = tmp / "no_tensorflow"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(NO_TENSORFLOW)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")]))
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def cli(command: str, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", f"flexunet.commands.{command}", *args], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{proc.args[2]} ran over {timeout} s: {out[-3000:]}")
    assert proc.returncode == 0, out[-4000:]
    return out


def weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    import flexunet.training.losses  # noqa: F401  (registers the loss and metrics)
    import flexunet.training.metrics  # noqa: F401

    model = keras.saving.load_model(run_dir / "checkpoints/best.keras", safe_mode=True)
    return [np.asarray(w) for w in model.get_weights()]


def assert_same_weights(run_a: Path, run_b: Path) -> None:
    a, b = weights(run_a), weights(run_b)
    assert len(a) == len(b)
    worst = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))
    assert worst <= WEIGHT_ATOL, f"weights differ by up to {worst}"


@pytest.fixture(scope="module", autouse=True)
def shared_compilation_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One persistent JAX compilation cache for every subprocess of the module (``jax_env``
    copies this process's environment): the runs that repeat a program (resume, evaluate) load
    it instead of compiling it again."""
    cache = tmp_path_factory.mktemp("jax_compilation_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAX_COMPILATION_CACHE_DIR", str(cache))
        yield


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """debug=fast on JAX, no TensorFlow, one device; the backup kept for the resume test."""
    tmp = tmp_path_factory.mktemp("jax")
    run_dir = tmp / "run"
    finish(cli("train", [
        *JAX_FAST, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}",
        "train.callbacks.backup.delete_checkpoint=false", "train.callbacks.backup.interval_s=0",
    ], tmp, jax_env(tmp)))
    return run_dir


def test_jax_trains_without_tensorflow_and_logs_to_tensorboard(jax_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    info = json.loads((jax_run / "run_info.json").read_text())
    assert info["status"] == "completed" and info["backend"] == "jax"
    assert "data loader PairBatches" in (jax_run / "train.log").read_text()
    assert (jax_run / "checkpoints/best.keras").is_file()
    for split in ("train", "validation"):
        acc = EventAccumulator(str(jax_run / "tensorboard" / split), size_guidance={"tensors": 0})
        acc.Reload()
        (event,) = acc.Tensors("epoch_loss")
        assert event.step == 1 and np.isfinite(event.tensor_proto.float_val[0])
    acc = EventAccumulator(str(jax_run / "tensorboard/epoch_change"), size_guidance={"images": 0})
    acc.Reload()
    (image,) = acc.Images("epoch_change_infer")
    assert (image.width, image.height) == (64 * 3 + 4, 64 * 2 + 2)


@pytest.mark.shared_data
def test_checkpoints_evaluate_alike_on_either_backend_and_jax_infers(
    jax_run: Path, tmp_path: Path, data_dir: Path
) -> None:
    from flexunet.commands.evaluate import evaluate
    from tests.helpers import compose_config

    tf_run = train_fast_run(tmp_path / "tf_run", data_dir)
    env = jax_env(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(SHARED_DATA / "ph2/images/IMD003.jpg", images)
    common = [f"paths.data_dir={data_dir}", "eval.split=valid", "eval.report_worst=0"]
    evaluating = cli("evaluate", ["-m", f"ckpt_path={tf_run},{jax_run}", "runtime.backend=jax",
                                  *common], tmp_path, env)
    finish(evaluating)
    inferring = cli("infer", [f"ckpt_path={jax_run}", f"infer.input={images}",
                              "runtime.backend=jax", f"hydra.run.dir={tmp_path / 'infer'}"],
                    tmp_path, env)
    finish(inferring)
    from PIL import Image

    with Image.open(tmp_path / "infer/predictions/masks/IMD003.png") as mask:
        assert mask.size == (765, 574)  # the image's own size

    (sweep,) = (tmp_path / "outputs/evaluate/multiruns").iterdir()
    for job, run in enumerate((tf_run, jax_run)):
        on_jax = json.loads((sweep / str(job) / "evaluation.json").read_text())
        out = tmp_path / f"tf_eval_{job}"
        cfg = compose_config("evaluate", [f"ckpt_path={run}", *common], out, data_dir)
        evaluate(cfg, out, HydraConfig.get().overrides.task)
        on_tf = json.loads((out / "evaluation.json").read_text())
        assert on_jax["count"] == on_tf["count"] > 0
        for key, value in on_tf["mean"].items():
            assert on_jax["mean"][key] == pytest.approx(value, abs=1e-4), key


def test_data_parallel_on_two_devices_trains_the_one_device_weights(
    jax_run: Path, tmp_path: Path, data_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    out = finish(cli("train", [
        *JAX_FAST, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}",
        "train.distribution=data_parallel",
    ], tmp_path, jax_env(tmp_path, devices=2)))
    assert "data_parallel over 2 devices" in (run_dir / "train.log").read_text(), out[-2000:]
    assert_same_weights(jax_run, run_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_data_parallel_over_two_processes_writes_once_and_trains_the_same_weights(
    jax_run: Path, tmp_path: Path, data_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    port = free_port()
    procs = [
        cli("train", [
            *JAX_FAST, f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}",
            "train.distribution=data_parallel", f"runtime.coordinator=localhost:{port}",
            "runtime.num_processes=2", f"runtime.process_id={k}",
        ], tmp_path, jax_env(tmp_path))
        for k in range(2)
    ]
    for proc in procs:
        finish(proc, timeout=400)
    assert (run_dir / "checkpoints/best.keras").is_file()
    assert [p.name for p in (run_dir / "ranks").iterdir()] == ["1.log"]
    assert "process 1 of 2" in (run_dir / "ranks/1.log").read_text()
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["status"] == "completed" and info["processes"] == 2
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 2  # header, epoch 1
    assert_same_weights(jax_run, run_dir)


def test_jax_run_resumes(jax_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    shutil.copytree(jax_run, run_dir)
    finish(cli("train", [f"resume={run_dir}", "train.epochs=2"], tmp_path, jax_env(tmp_path)))
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["status"] == "completed" and info["resumed"] == 1 and info["backend"] == "jax"


def test_tensorflow_refuses_several_processes_and_names_the_jax_route() -> None:
    from flexunet.training.runtime import configure_runtime

    with pytest.raises(ConfigError, match="runtime.backend=jax train.distribution=data_parallel"):
        configure_runtime("tensorflow", coordinator="localhost:1234", num_processes=2,
                          process_id=0, distributed=True)


def test_an_unknown_backend_is_a_config_error() -> None:
    from flexunet.training.runtime import select_backend

    with pytest.raises(ConfigError, match="runtime.backend='torch'"):
        select_backend("torch")


def test_jax_trains_in_float16_with_a_finite_loss(tmp_path: Path, data_dir: Path) -> None:
    """train.mixed_precision on JAX: float16 compute (the default run above is auto, bfloat16
    on CPUs with AMX), float32 head, and a loss that stays finite."""
    run_dir = tmp_path / "run"
    finish(cli("train", [
        *[arg for arg in JAX_FAST if not arg.startswith("train.mixed_precision=")],
        f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}",
        "train.mixed_precision=mixed_float16", "train.epochs=2",
    ], tmp_path, jax_env(tmp_path)))
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["backend"] == "jax" and info["precision"] == "mixed_float16"
    rows = [r.split(",") for r in (run_dir / "metrics.csv").read_text().splitlines()]
    loss = rows[0].index("loss")
    assert len(rows) == 3 and all(np.isfinite(float(r[loss])) for r in rows[1:])
