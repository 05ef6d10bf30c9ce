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


def test_compiled_model_has_the_fused_adam_and_the_steps_per_call(compose) -> None:
    import keras
    import numpy as np

    from flexunet.training.build import compile_model
    from flexunet.training.optimizers import Adam

    cfg = compose(["model=flexunet_cpu", "model.num_layers=2", "model.base_filters=4",
                   "model.image_width=16", "model.image_height=16",
                   "train.steps_per_execution=3"])
    model = compile_model(cfg)
    assert type(model.optimizer) is Adam and model.steps_per_execution == 3
    # a fit of 5 batches with 3 steps per call still takes each batch once
    x = np.zeros((10, 16, 16, 3), "float32")
    y = keras.utils.to_categorical(np.zeros((10, 16, 16)), 2)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 5
    assert compile_model(compose([])).steps_per_execution == 4  # the default


def test_fixed_step_counts_are_kept_exactly() -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from flexunet.training.build import steps_per_call

    assert steps_per_call(4) == steps_per_call(4, None, None) == 4
    assert steps_per_call(4, 6, None) == 2 and steps_per_call(4, 8, 3) == 1
    # why: on an endless dataset Keras runs whole calls, so 4 steps per call would turn
    # steps_per_epoch=6 into 8 steps
    for per_call, expected in ((4, 16), (steps_per_call(4, 6), 12)):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse", steps_per_execution=per_call)
        endless = tf.data.Dataset.from_tensors((np.zeros((2, 2), "f"), np.zeros((2, 1), "f")))
        model.fit(endless.repeat(), steps_per_epoch=6, epochs=2, verbose=0, shuffle=False)
        assert int(model.optimizer.iterations) == expected
