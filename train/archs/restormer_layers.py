"""The custom Keras layers Restormer is made of (train/archs/restormer.py), registered so a saved model loads.

PyTorch's pixel shuffle and unshuffle in PyTorch's channel order (so the reference code's convs feeding them need
no permutation), the bias-free layer norm, the gated GELU, and the transposed (channel) attention of MDTA, whose
cosine matrix is a whole-image statistic that tiled inference computes over the whole frame. `import train`
imports this module with train/archs/layers.py (see train/__init__.py); class names are part of the saved-file
format.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from train.archs.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class TorchPixelShuffle(layers.Layer):
    """PyTorch's `nn.PixelShuffle`: [h, w, c * r * r] -> [h * r, w * r, c], output channel c at sub-pixel (i, j)
    read from input channel `c * r * r + i * r + j` (channel-major; `PixelShuffle` above is TensorFlow's order).
    Reshapes and one transpose of rank 5 (TFLite takes it), so a PyTorch conv feeding it needs no permutation."""

    def __init__(self, block: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.block = int(block)

    def call(self, x: Any) -> Any:
        import tensorflow as tf

        r, c = self.block, x.shape[-1] // (self.block * self.block)
        shape = tf.shape(x)
        b, h, w = shape[0], shape[1], shape[2]
        y = tf.reshape(x, [b * h, w, c, r, r])
        y = tf.transpose(y, [0, 3, 1, 4, 2])  # [b*h, i, w, j, c]
        return tf.reshape(y, [b, h * r, w * r, c])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, c = input_shape
        r = self.block
        return (
            b,
            None if h is None else h * r,
            None if w is None else w * r,
            None if c is None else c // (r * r),
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TorchPixelUnshuffle(layers.Layer):
    """PyTorch's `nn.PixelUnshuffle`, the inverse of `TorchPixelShuffle`: [h * r, w * r, c] -> [h, w, c * r * r],
    pixel (h * r + i, w * r + j) of channel c going to channel `c * r * r + i * r + j`."""

    def __init__(self, block: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.block = int(block)

    def call(self, x: Any) -> Any:
        import tensorflow as tf

        r, c = self.block, x.shape[-1]
        shape = tf.shape(x)
        b, h, w = shape[0], shape[1] // r, shape[2] // r
        y = tf.reshape(x, [b * h, r, w, r, c])
        y = tf.transpose(y, [0, 2, 4, 1, 3])  # [b*h, w, c, i, j]
        return tf.reshape(y, [b, h, w, c * r * r])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, c = input_shape
        r = self.block
        return (
            b,
            None if h is None else h // r,
            None if w is None else w // r,
            None if c is None else c * r * r,
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BiasFreeLayerNorm(layers.Layer):
    """Restormer's `BiasFree_LayerNorm` over channels: `x / sqrt(var(x) + eps) * weight` (the variance is taken
    about the mean, but the mean is not subtracted); float32 statistics under mixed precision."""

    def __init__(self, epsilon: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape: tuple) -> None:
        self.weight = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="weight")

    def call(self, x: Any) -> Any:
        x32 = ops.cast(x, "float32")
        var = ops.var(x32, axis=-1, keepdims=True)
        y = x32 * ops.rsqrt(var + self.epsilon) * ops.cast(self.weight, "float32")
        return ops.cast(y, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GeluGate(layers.Layer):
    """Restormer's gated feed-forward nonlinearity: split the channels in halves a, b; `gelu(a) * b` (exact GELU,
    as PyTorch's default)."""

    def call(self, x: Any) -> Any:
        a, b = ops.split(x, 2, axis=-1)
        return keras.activations.gelu(a, approximate=False) * b

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], None if input_shape[-1] is None else input_shape[-1] // 2)


def channel_gram(q: Any, k: Any, heads: int) -> tuple[Any, Any, Any]:
    """Per example and head, the channel Gram matrix `sum over pixels of q_i * k_j` [b, heads, c, c] and the
    squared norms of q's and k's channels [b, heads, c], in float32 (q, k: [b, h, w, heads * c])."""
    import tensorflow as tf

    q32, k32 = tf.cast(q, tf.float32), tf.cast(k, tf.float32)
    shape = tf.shape(q32)
    ch = q.shape[-1] // heads
    # [b, heads, c, pixels] x [b, heads, pixels, c]
    qt = tf.transpose(tf.reshape(q32, [shape[0], -1, heads, ch]), [0, 2, 3, 1])
    kt = tf.transpose(tf.reshape(k32, [shape[0], -1, heads, ch]), [0, 2, 1, 3])
    gram = tf.matmul(qt, kt)
    qq = tf.reshape(tf.reduce_sum(tf.square(q32), axis=[1, 2]), [shape[0], heads, ch])
    kk = tf.reshape(tf.reduce_sum(tf.square(k32), axis=[1, 2]), [shape[0], heads, ch])
    return gram, qq, kk


NORM_EPS = 1e-12  # torch.nn.functional.normalize's floor on a norm


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelAttention(layers.Layer):
    """The attention of Restormer's MDTA ("transposed" attention, Zamir et al. 2022), from the projected and
    depthwise-convolved [q | k | v] ([b, h, w, 3c]) to [b, h, w, c]: per head, q's and k's channels are
    L2-normalized over all pixels, their c x c cosine matrix is scaled by the head's learned `temperature`,
    soft-maxed over k's channels, and each pixel's v channels are mixed by it.

    The cosine matrix is a statistic of the whole image (like instance norm's moments). Tiled inference computes
    it over the whole frame first (train/inference/frame_stats.py sets `_frame_stats` to it), so tiles agree."""

    def __init__(self, heads: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heads = int(heads)

    def build(self, input_shape: tuple) -> None:
        self.temperature = self.add_weight(shape=(self.heads,), initializer="ones", name="temperature")

    def call(self, qkv: Any) -> Any:
        import tensorflow as tf

        q, k, v = tf.split(qkv, 3, axis=-1)
        heads, ch = self.heads, v.shape[-1] // self.heads
        frame = getattr(self, "_frame_stats", None)  # set only on inference copies, by frame_stats
        if frame is None:
            gram, qq, kk = channel_gram(q, k, heads)
            qn = tf.maximum(tf.sqrt(qq), NORM_EPS)
            kn = tf.maximum(tf.sqrt(kk), NORM_EPS)
            cosine = gram / (qn[..., :, None] * kn[..., None, :])
        else:
            cosine = tf.cast(frame[0], tf.float32)[None]
        temperature = tf.reshape(tf.cast(self.temperature, tf.float32), [1, heads, 1, 1])
        attn = tf.cast(tf.nn.softmax(cosine * temperature, axis=-1), v.dtype)  # [b, heads, c, c]
        shape = tf.shape(v)
        vt = tf.transpose(tf.reshape(v, [shape[0], -1, heads, ch]), [0, 2, 1, 3])  # [b, heads, pixels, c]
        out = tf.matmul(vt, attn, transpose_b=True)  # out_i = sum_j attn_ij v_j
        out = tf.transpose(out, [0, 2, 1, 3])
        return tf.reshape(out, [shape[0], shape[1], shape[2], heads * ch])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, c = input_shape
        return (b, h, w, None if c is None else c // 3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "heads": self.heads}
