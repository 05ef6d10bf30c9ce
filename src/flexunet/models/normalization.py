"""Batch normalization whose training pass is TensorFlow's fused kernel.

Keras 3's ``BatchNormalization`` trains with about ten separate ops per layer (a cast to
float32, two reductions for the moments, the normalisation's subtract, multiply and add, a
cast back) and as many in the gradient, each a full pass over the feature map. TensorFlow
ships the same computation as one kernel each way (``FusedBatchNormV3`` and its gradient,
oneDNN's on CPUs). FlexUNet and the zoo's BatchNorm models use the fused layer; docs/
performance.md has what it saves.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="flexunet")
class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with its training pass, on the TensorFlow backend,
    done by ``FusedBatchNormV3``.

    The fused kernel normalises by the batch's mean and biased variance, as Keras does, and
    the moving statistics are updated as Keras updates them (the kernel's Bessel-corrected
    variance is turned back into the biased one). Inference, other backends, masks, batch
    renormalisation, statistics synchronised across replicas, a layer without ``scale`` or
    ``center`` and an axis other than the last of a 4-D input take Keras' own path, so every
    option behaves as there.
    """

    def _fusable(self, inputs: Any, training: Any, mask: Any) -> bool:
        return (
            bool(training)
            and self.trainable
            and keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and self.scale
            and self.center
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            scale=tf.cast(self.gamma, "float32"),
            offset=tf.cast(self.beta, "float32"),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        keep = self.momentum
        self.moving_mean.assign(self.moving_mean * keep + mean * (1.0 - keep))
        self.moving_variance.assign(self.moving_variance * keep + variance * (1.0 - keep))
        return tf.cast(outputs, self.compute_dtype)
