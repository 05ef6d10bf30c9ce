"""Building the training objects from the config."""

from __future__ import annotations

import pytest


def test_mirrored_strategy_falls_back_to_the_default_on_one_device(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import tensorflow as tf

    from flexunet.errors import ConfigError
    from flexunet.training.build import make_strategy

    if len(tf.config.list_logical_devices("GPU")) > 1:
        pytest.skip("several GPUs: mirrored is used")
    assert make_strategy("mirrored") is tf.distribute.get_strategy()
    assert "using the default strategy" in caplog.text
    with pytest.raises(ConfigError, match="default or mirrored"):
        make_strategy("mirorred")
