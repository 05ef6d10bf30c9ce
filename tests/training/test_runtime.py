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
