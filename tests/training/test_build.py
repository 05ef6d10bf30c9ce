"""Building the training objects from the config."""

from __future__ import annotations

import pytest


def test_mirrored_falls_back_to_one_device_and_unknown_names_are_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import tensorflow as tf

    from flexunet.errors import ConfigError
    from flexunet.training.build import distribution_scope

    if len(tf.config.list_logical_devices("GPU")) > 1:
        pytest.skip("several GPUs: mirrored is used")
    with distribution_scope("mirrored", "tensorflow"):
        assert not tf.distribute.has_strategy()  # the default strategy, one device
    assert "using one device" in caplog.text
    with pytest.raises(ConfigError, match="default, mirrored, data_parallel"), \
            distribution_scope("mirorred", "tensorflow"):
        pass
    with pytest.raises(ConfigError, match="needs runtime.backend=jax"), \
            distribution_scope("data_parallel", "tensorflow"):
        pass
    with pytest.raises(ConfigError, match="use train.distribution=data_parallel"), \
            distribution_scope("mirrored", "jax"):
        pass
