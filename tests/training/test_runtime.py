"""Process set-up: environment defaults (no CUDA error line without a GPU), GPU pinning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flexunet.training import runtime


@pytest.mark.parametrize(("driver", "level"), [(True, "2"), (False, "3")])
def test_tensorflow_log_level_depends_on_the_nvidia_driver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, driver: bool, level: str
) -> None:
    monkeypatch.setattr(runtime, "NVIDIA_DRIVER", tmp_path if driver else tmp_path / "none")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    runtime.configure_environment()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == level
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's own value wins
    runtime.configure_environment()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_tensorflow_start_prints_no_cuda_error() -> None:
    """With a driver cuInit succeeds; without one its failure is not printed."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = ("from flexunet.training.runtime import configure_environment\n"
            "configure_environment()\n"
            "import tensorflow as tf\n"
            "tf.config.list_physical_devices()\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cuInit" not in proc.stderr


def test_gpu_per_job_pins_one_of_the_visible_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from flexunet.training.runtime import pin_gpu

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    pin_gpu(3)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"


def _cpu(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: test CPU\nflags\t\t: fpu sse2 {flags}\n")
    return path


@pytest.mark.parametrize(
    ("flags", "gpus", "policy"),
    [
        ("avx512f amx_bf16 amx_tile", [], "mixed_bfloat16"),
        ("avx512f avx512_bf16", [], "mixed_bfloat16"),
        ("avx2 avx512f", [], "float32"),  # bfloat16 would be emulated: slower
        ("amx_bf16", ["0"], "float32"),  # a GPU: auto keeps float32
    ],
)
def test_auto_precision_follows_the_cpu_flags_and_gpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: str, gpus: list, policy: str
) -> None:
    monkeypatch.setattr(runtime, "CPUINFO", _cpu(tmp_path, flags))
    monkeypatch.setattr(runtime, "visible_gpu_ids", lambda: gpus)
    chosen, why = runtime.choose_precision("auto")
    assert chosen == policy and why.startswith("auto:")
    assert runtime.choose_precision("float32")[0] == "float32"  # a named policy is kept
    assert runtime.choose_precision("mixed_float16")[0] == "mixed_float16"


def test_unknown_precision_is_a_config_error_naming_the_choices() -> None:
    from flexunet.errors import ConfigError

    with pytest.raises(ConfigError, match="mixed_bfloat16.*true was mixed_float16"):
        runtime.choose_precision("True")
    with pytest.raises(ConfigError, match="train.mixed_precision=bf16: use one of auto"):
        runtime.choose_precision("bf16")
