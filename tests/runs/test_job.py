"""One recorded training job: failure values and the record of a failed single run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexunet.runs.job import failure_value


def test_single_run_failure_is_recorded_and_raised(compose, tmp_path: Path) -> None:
    import keras
    from hydra.errors import InstantiationException

    from flexunet.commands.train import check, train
    from flexunet.runs.job import run_job

    cfg = compose(["debug=fast", "data.source.count=24", "train.mixed_precision=mixed_float16",
                   "model.base_filters=0"])
    with pytest.raises(InstantiationException, match="base_filters"):
        run_job(cfg, check, train)
    info = json.loads((tmp_path / "run/run_info.json").read_text())
    assert info["status"] == "failed" and info["overrides"][-1] == "model.base_filters=0"
    assert keras.mixed_precision.global_policy().name == "float32"  # reset after the job


def test_failure_value_is_finite_and_worst_for_the_direction() -> None:
    assert failure_value("max") < -1e6 and failure_value("min") > 1e6
