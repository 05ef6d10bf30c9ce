"""Optimizers built from ``train.optimizer``: Keras' own, and Adam with a fused update.

Keras 3's Adam updates each variable with about fifteen small TensorFlow ops (casts, powers,
two moment updates, a square root, a division, three assignments). On two CPU cores those
ops took 11% of the operators' time in a training step of the default 128x128 model, and
TensorFlow ships the same update as one kernel (``ResourceApplyAdam``). docs/performance.md
has the measurement.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="flexunet")
class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with each variable's update, on the TensorFlow backend, done
    by TensorFlow's fused kernel ``ResourceApplyAdam``.

    The kernel computes what Keras' Adam computes (``m += (g - m)(1 - beta_1)``, ``v += (g^2
    - v)(1 - beta_2)``, ``w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) +
    epsilon)``) in one pass over the variable, so every option of Keras' Adam (``clipvalue``,
    schedules, weight decay, ...) behaves as there. ``amsgrad``, sparse gradients and other
    backends take Keras' own update.
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        handle = variable.value.handle if isinstance(variable, keras.Variable) else variable.handle
        tf.raw_ops.ResourceApplyAdam(
            var=handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
        return None
