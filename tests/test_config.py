"""check_config: every unknown key and out-of-range value, before anything runs."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from flexunet.config import TrainJobConfig, check_config, config_problems
from flexunet.errors import ConfigError


def train_config(**overrides):
    cfg = OmegaConf.structured(TrainJobConfig)
    cfg.model = {"_target_": "flexunet.models.build_flexunet", "base_filters": 8}
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, force_add=True)  # what Hydra does for +key=value
    return cfg


def test_a_clean_config_has_no_problems() -> None:
    assert config_problems(train_config()) == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.epoch", 3, "unknown key train.epoch (did you mean train.epochs?"),
        ("model.base_filter", 8, "unknown key model.base_filter (did you mean model.base_filters?"),
        ("data.limt", 3, "unknown key data.limt (did you mean data.limit?"),
        ("train.batch_size", 0, "train.batch_size=0: must be at least 1"),
        ("data.cache_mb", -1, "data.cache_mb=-1.0: must be at least 0"),
        ("train.steps_per_execution", 0, "train.steps_per_execution=0: must be at least 1"),
    ],
)
def test_each_mistake_is_named_with_the_closest_valid_key(key, value, message) -> None:
    (problem,) = config_problems(train_config(**{key: value}))
    assert problem.startswith(message)


def test_targets_with_kwargs_check_themselves_and_lists_are_walked() -> None:
    cfg = train_config()
    cfg.train.optimizer = {"_target_": "keras.optimizers.Adam", "learning_rat": 1e-3}  # **kwargs
    cfg.train.metrics = [{"_target_": "keras.callbacks.EarlyStopping", "patiense": 3}]
    (problem,) = config_problems(cfg)
    assert problem.startswith("unknown key train.metrics.0.patiense (did you mean")


def test_all_problems_in_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        check_config(train_config(**{"train.epoch": 3, "train.epochs": 0}))
    assert "\n" not in str(err.value)
    assert "train.epoch " in str(err.value) and "train.epochs=0" in str(err.value)


def test_an_unimportable_target_is_named() -> None:
    cfg = train_config()
    cfg.model._target_ = "flexunet.models.build_flexunett"
    with pytest.raises(ConfigError, match="build_flexunett cannot be imported"):
        check_config(cfg)
