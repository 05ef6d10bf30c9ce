"""Process set-up: GPU pinning."""

from __future__ import annotations

import pytest


def test_gpu_per_job_pins_one_of_the_visible_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from flexunet.training.runtime import pin_gpu

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    pin_gpu(3)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
