"""Experiment presets, the Optuna search space and the SLURM launcher preset compose as
documented."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tests.helpers import SHARED_DATA


def test_skin_cancer_512_is_the_published_configuration(compose) -> None:
    import keras
    from hydra.utils import instantiate

    from flexunet.training.optimizers import Adam

    cfg = compose(["experiment=skin_cancer_512"])
    model = cfg.model
    assert (model.image_width, model.image_height, model.base_filters) == (512, 512, 16)
    assert list(model.base_kernels) == [11, 11] and model.num_layers == 8
    assert model.dropout_rate == 0.05 and model.num_classes == 2
    assert cfg.data.source._target_ == "flexunet.data.sources.SplitFolderSource"
    assert cfg.data.source.root.endswith("/skin_cancer")
    assert (cfg.train.batch_size, cfg.train.epochs) == (2, 100)
    assert list(cfg.tags) == ["skin_cancer_512", "published", "ham10000"]

    optimizer = instantiate(cfg.train.optimizer)
    assert type(optimizer) is Adam  # keras.optimizers.Adam with the fused update
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(7e-5)
    assert optimizer.clipvalue == 0.5
    assert isinstance(instantiate(cfg.train.loss), keras.losses.CategoricalCrossentropy)
    early_stop = instantiate(cfg.train.callbacks.early_stop)
    assert early_stop.patience == 10
    reducer = instantiate(cfg.train.callbacks.lr_reducer)
    assert (reducer.factor, reducer.patience) == (0.5, 4)

    net = instantiate(cfg.model, _convert_="all")
    assert net.count_params() == 126_809_218
    del net
    keras.backend.clear_session()


def test_quickstart_is_the_embedded_default(compose) -> None:
    default, quickstart = compose([]), compose(["experiment=quickstart"])
    for key in ("model", "data", "mask", "train"):
        assert OmegaConf.to_container(quickstart[key]) == OmegaConf.to_container(default[key])
    assert list(quickstart.tags) == ["quickstart", "synthetic", "cpu"]


@pytest.mark.shared_data
def test_ph2_reads_the_sample_folder(compose) -> None:
    from hydra.utils import instantiate

    cfg = compose(["experiment=ph2", f"data.source.root={SHARED_DATA / 'ph2'}"])
    assert cfg.data.source._target_ == "flexunet.data.sources.FolderSource"
    assert "ph2" in cfg.tags
    source = instantiate(cfg.data.source, _convert_="all")
    assert len(source.pairs("train")) > 90 and len(source.pairs("valid")) >= 15


@pytest.mark.parametrize("mode, direction", [("max", "maximize"), ("min", "minimize")])
def test_optuna_search_follows_the_monitor_mode(compose, mode: str, direction: str) -> None:
    cfg = compose(["hparams_search=optuna", f"train.monitor_mode={mode}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == direction
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert set(sweeper.params) == {
        "train.optimizer.learning_rate", "model.base_filters", "model.dropout_rate",
        "model.base_kernels",
    }


def test_slurm_launcher_preset(compose) -> None:
    cfg = compose(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 1440)
