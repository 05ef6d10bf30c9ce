"""Custom layers of the transformer models (Swin-UNet, TransUNet), written with
backend-neutral ``keras.ops`` and registered as serializable, so that saved models load in
Keras' safe mode on any backend."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

PACKAGE = "flexunet"


def window_partition(x, height: int, width: int, window: int, channels: int):
    """(B, H, W, C) -> (B * windows, window * window, C)."""
    x = ops.reshape(x, (-1, height // window, window, width // window, window, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, window * window, channels))


def window_merge(x, height: int, width: int, window: int, channels: int):
    """The inverse of :func:`window_partition`."""
    x = ops.reshape(x, (-1, height // window, width // window, window, window, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, height, width, channels))


def relative_position_index(window: int) -> np.ndarray:
    """(N, N) indices into the (2w-1)^2 relative position bias table, N = window**2."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
    flat = coords.reshape(2, -1)
    rel = (flat[:, :, None] - flat[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).astype("int32")


def shift_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
    """(windows, N, N) additive mask keeping shifted windows from attending across the
    image's wrapped-around borders (-100 between different regions, 0 within one)."""
    regions = np.zeros((height, width), dtype="int32")
    label = 0
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for rows in bands:
        for cols in bands:
            regions[rows, cols] = label
            label += 1
    windows = regions.reshape(height // window, window, width // window, window)
    windows = windows.transpose(0, 2, 1, 3).reshape(-1, window * window)
    diff = windows[:, None, :] - windows[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype("float32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwinBlock(layers.Layer):
    """One Swin Transformer block on a (B, H, W, C) feature map: (shifted) window multi-head
    self-attention with a relative position bias, then a two-layer GELU MLP of ``num_mlp``
    units, each pre-normalised and residual (Liu et al., 2021)."""

    def __init__(self, num_heads: int, window_size: int, shift_size: int = 0,
                 num_mlp: int = 128, dropout_rate: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.num_mlp = num_mlp
        self.dropout_rate = dropout_rate
        self.norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1", dtype=self.dtype_policy)
        self.norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2", dtype=self.dtype_policy)
        self.mlp_dropout = layers.Dropout(dropout_rate, dtype=self.dtype_policy)

    def build(self, input_shape) -> None:
        _, height, width, channels = input_shape
        self.height, self.width, self.channels = int(height), int(width), int(channels)
        self.qkv = layers.Dense(3 * channels, name="qkv", dtype=self.dtype_policy)
        self.proj = layers.Dense(channels, name="proj", dtype=self.dtype_policy)
        self.fc1 = layers.Dense(
            self.num_mlp, activation="gelu", name="fc1", dtype=self.dtype_policy
        )
        self.fc2 = layers.Dense(channels, name="fc2", dtype=self.dtype_policy)
        tokens = self.window_size**2
        self.norm1.build(input_shape)
        self.norm2.build(input_shape)
        self.qkv.build((None, tokens, channels))
        self.proj.build((None, tokens, channels))
        self.fc1.build(input_shape)
        self.fc2.build((*input_shape[:-1], self.num_mlp))
        self.bias_table = self.add_weight(
            shape=((2 * self.window_size - 1) ** 2, self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="bias_table",
        )
        self.index = relative_position_index(self.window_size).reshape(-1)
        self.mask = (shift_mask(self.height, self.width, self.window_size, self.shift_size)
                     if self.shift_size else None)

    def _attention(self, x):
        h, w, c, win = self.height, self.width, self.channels, self.window_size
        tokens, heads = win * win, self.num_heads
        windows = window_partition(x, h, w, win, c)
        qkv = ops.reshape(self.qkv(windows), (-1, tokens, 3, heads, c // heads))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * ops.cast((c // heads) ** -0.5, q.dtype)
        attn = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        bias = ops.take(self.bias_table, ops.convert_to_tensor(self.index), axis=0)
        bias = ops.transpose(ops.reshape(bias, (tokens, tokens, heads)), (2, 0, 1))
        attn = attn + ops.cast(bias, attn.dtype)[None]
        if self.mask is not None:
            count = self.mask.shape[0]
            attn = ops.reshape(attn, (-1, count, heads, tokens, tokens))
            attn = attn + ops.cast(ops.convert_to_tensor(self.mask), attn.dtype)[None, :, None]
            attn = ops.reshape(attn, (-1, heads, tokens, tokens))
        attn = ops.softmax(attn, axis=-1)
        out = ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3))
        out = self.proj(ops.reshape(out, (-1, tokens, c)))
        return window_merge(out, h, w, win, c)

    def call(self, x, training=None):
        y = self.norm1(x)
        if self.shift_size:
            y = ops.roll(y, (-self.shift_size, -self.shift_size), axis=(1, 2))
        y = self._attention(y)
        if self.shift_size:
            y = ops.roll(y, (self.shift_size, self.shift_size), axis=(1, 2))
        x = x + y
        y = self.mlp_dropout(self.fc2(self.fc1(self.norm2(x))), training=training)
        return x + y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return super().get_config() | {
            "num_heads": self.num_heads, "window_size": self.window_size,
            "shift_size": self.shift_size, "num_mlp": self.num_mlp,
            "dropout_rate": self.dropout_rate,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PatchMerging(layers.Layer):
    """Swin's downsampling: each 2x2 group of tokens concatenated (4C), normalised and
    projected to 2C; (B, H, W, C) -> (B, H/2, W/2, 2C)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.norm = layers.LayerNormalization(epsilon=1e-5, name="norm", dtype=self.dtype_policy)

    def build(self, input_shape) -> None:
        _, height, width, channels = input_shape
        self.height, self.width, self.channels = int(height), int(width), int(channels)
        self.reduce = layers.Dense(
            2 * self.channels, use_bias=False, name="reduce", dtype=self.dtype_policy
        )
        self.norm.build((None, self.height // 2, self.width // 2, 4 * self.channels))
        self.reduce.build((None, self.height // 2, self.width // 2, 4 * self.channels))

    def call(self, x):
        h, w, c = self.height, self.width, self.channels
        x = ops.reshape(x, (-1, h // 2, 2, w // 2, 2, c))
        x = ops.transpose(x, (0, 1, 3, 4, 2, 5))  # neighbours in (col, row) order, as Swin
        x = ops.reshape(x, (-1, h // 2, w // 2, 4 * c))
        return self.reduce(self.norm(x))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, h // 2, w // 2, 2 * c)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PatchExpanding(layers.Layer):
    """Swin-UNet's upsampling: a linear projection to ``scale**2 * C / ratio`` channels
    rearranged into ``scale x scale`` neighbours, then normalised; (B, H, W, C) ->
    (B, scale*H, scale*W, C / ratio) with ``ratio`` 2 between levels and 1 at the end."""

    def __init__(self, scale: int = 2, ratio: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale
        self.ratio = ratio
        self.norm = layers.LayerNormalization(epsilon=1e-5, name="norm", dtype=self.dtype_policy)

    def build(self, input_shape) -> None:
        _, height, width, channels = input_shape
        self.height, self.width = int(height), int(width)
        self.out_channels = int(channels) // self.ratio
        self.expand = layers.Dense(self.scale**2 * self.out_channels, use_bias=False,
                                   name="expand", dtype=self.dtype_policy)
        self.expand.build(input_shape)
        self.norm.build((None, self.height * self.scale, self.width * self.scale,
                         self.out_channels))

    def call(self, x):
        h, w, s, c = self.height, self.width, self.scale, self.out_channels
        x = ops.reshape(self.expand(x), (-1, h, w, s, s, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return self.norm(ops.reshape(x, (-1, h * s, w * s, c)))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, h * self.scale, w * self.scale, c // self.ratio)

    def get_config(self) -> dict:
        return super().get_config() | {"scale": self.scale, "ratio": self.ratio}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositionEmbedding(layers.Layer):
    """A learned position embedding added to a (B, tokens, D) sequence (ViT, TransUNet)."""

    def build(self, input_shape) -> None:
        self.embedding = self.add_weight(
            shape=(int(input_shape[1]), int(input_shape[2])),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="embedding",
        )

    def call(self, x):
        return x + ops.cast(self.embedding, x.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape
