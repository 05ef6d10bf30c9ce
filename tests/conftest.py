"""Shared fixtures: composed configs, a session-wide synthetic dataset, the real sample data.

Tests that read the sample data in ``../shared/data`` are marked ``shared_data``. They run by
default (CI has the data); without it they fail and say so, instead of passing silently. Run
the others alone with ``-m "not shared_data"``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from flexunet.training.runtime import configure_environment
from tests.helpers import SHARED_DATA, compose_config


def pytest_sessionstart(session: pytest.Session) -> None:
    configure_environment()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("shared_data") and not SHARED_DATA.is_dir():
        pytest.fail(
            f"this test reads the sample data, not found at {SHARED_DATA}; "
            "deselect such tests with -m 'not shared_data'",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory shared by the session, so synthetic data is generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture()
def compose(data_dir: Path, tmp_path: Path) -> Callable[..., DictConfig]:
    """``compose(overrides, config_name="train")``: a command's config as the command composes
    it, with Hydra's runtime (``paths.run_dir``) set to ``tmp_path / "run"``."""

    def _compose(overrides: list[str] = (), config_name: str = "train") -> DictConfig:
        return compose_config(config_name, list(overrides), tmp_path / "run", data_dir)

    return _compose


@pytest.fixture(scope="session")
def prepared_ph2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 150 PH2 pairs prepared once per session with flexunet-prepare's defaults."""
    from flexunet.data.organize import prepare_dataset

    output = tmp_path_factory.mktemp("prepared") / "ph2"
    prepare_dataset(SHARED_DATA / "ph2", output, rgb_map={"0,0,0": 0, "255,255,255": 1})
    return output
