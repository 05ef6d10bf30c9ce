"""Shared fixtures: composed configs, a session-wide synthetic dataset, the real sample data."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexunet.training.runtime import configure_environment

configure_environment()

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory shared by the session, so synthetic data is generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture()
def compose(data_dir: Path, tmp_path: Path):
    """Compose a primary config as the CLI would, with Hydra's runtime set to ``tmp_path``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from flexunet.config import register_configs

    def _compose(overrides: list[str] = (), config_name: str = "train"):
        register_configs()
        GlobalHydra.instance().clear()
        run_dir = tmp_path / "run"
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(
                config_name,
                overrides=[f"hydra.run.dir={run_dir}", f"paths.data_dir={data_dir}", *overrides],
                return_hydra_config=True,
            )
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.hydra.runtime.cwd = str(REPO)
        HydraConfig.instance().set_config(cfg)
        GlobalHydra.instance().clear()
        return cfg

    return _compose


@pytest.fixture(scope="session")
def prepared_ph2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 150 PH2 pairs prepared once per session with flexunet-prepare's defaults."""
    if not (SHARED_DATA / "ph2").is_dir():
        pytest.skip(f"sample data not found at {SHARED_DATA}")
    from flexunet.data.organize import prepare_dataset

    output = tmp_path_factory.mktemp("prepared") / "ph2"
    prepare_dataset(SHARED_DATA / "ph2", output, rgb_map={"0,0,0": 0, "255,255,255": 1})
    return output
