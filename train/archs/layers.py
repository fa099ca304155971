"""The custom Keras layers our generators and critic are made of, registered so a saved model loads.

`import train` imports this module when Keras is imported (see train/__init__.py): a `generator.keras` holding
any of these layers then loads with plain `keras.saving.load_model`. Names and the package are part of the
saved-file format: renaming a class breaks loading of existing versions.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from train.archs.base import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReflectionPadding2D(layers.Layer):
    """Pad height and width by mirroring the border (no dark frame for the 7x7 convs to learn around)."""

    def __init__(self, padding: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, x: Any) -> Any:
        p = self.padding
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, c = input_shape
        grow = 2 * self.padding
        return (b, None if h is None else h + grow, None if w is None else w + grow, c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class InstanceNormalization(layers.Layer):
    """Normalize each example and channel over height and width, then scale and shift (learned per channel).

    Statistics are computed in float32 even under a mixed precision policy (bfloat16 sums lose too many bits).
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape: tuple) -> None:
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, x: Any) -> Any:
        x32 = ops.cast(x, "float32")
        frame = getattr(
            self, "_frame_stats", None
        )  # set only on inference copies, by train.inference.frame_stats
        if frame is None:
            mean, var = ops.moments(x32, axes=[1, 2], keepdims=True)
        else:
            mean, var = (ops.reshape(ops.cast(v, "float32"), (1, 1, 1, -1)) for v in frame)
        scale = ops.rsqrt(var + self.epsilon) * ops.cast(self.gamma, "float32")
        y = x32 * scale + (ops.cast(self.beta, "float32") - mean * scale)
        return ops.cast(y, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GlobalSkip(layers.Layer):
    """`clip(input + residual, -1, 1)`: the generator predicts a correction to the blurred image."""

    def call(self, inputs: list[Any]) -> Any:
        image, residual = inputs
        return ops.clip(ops.cast(image, residual.dtype) + residual, -1.0, 1.0)

    def compute_output_shape(self, input_shapes: list[tuple]) -> tuple:
        return input_shapes[1]


@keras.saving.register_keras_serializable(package=PACKAGE)
class SimpleGate(layers.Layer):
    """NAFNet's nonlinearity: split the channels in two halves and multiply them."""

    def call(self, x: Any) -> Any:
        a, b = ops.split(x, 2, axis=-1)
        return a * b

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], None if input_shape[-1] is None else input_shape[-1] // 2)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LayerScale(layers.Layer):
    """A learned per-channel scale that starts at `init` (NAFNet's beta/gamma: 0, so each block starts as identity)."""

    def __init__(self, init: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.init = float(init)

    def build(self, input_shape: tuple) -> None:
        init = keras.initializers.Constant(self.init)
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer=init, name="scale")

    def call(self, x: Any) -> Any:
        return x * ops.cast(self.scale, x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "init": self.init}


def box_mean(x: Any, window: int) -> Any:
    """Mean over a `window` x `window` box around each pixel (clipped to the map), as TLC defines it: the valid
    box means (summed-area table, float32) replicate-padded back to the map's size. A window that covers the
    whole map gives the global mean everywhere."""
    import tensorflow as tf

    x32 = tf.cast(x, tf.float32)
    h, w = tf.shape(x32)[1], tf.shape(x32)[2]
    kh, kw = tf.minimum(h, window), tf.minimum(w, window)
    table = tf.cumsum(tf.cumsum(x32, axis=1), axis=2)
    table = tf.pad(table, [[0, 0], [1, 0], [1, 0], [0, 0]])
    oh, ow = h - kh + 1, w - kw + 1
    box = (
        table[:, kh : kh + oh, kw : kw + ow]
        - table[:, :oh, kw : kw + ow]
        - table[:, kh : kh + oh, :ow]
        + table[:, :oh, :ow]
    ) / tf.cast(kh * kw, tf.float32)
    rows = tf.clip_by_value(tf.range(h) - (h - oh) // 2, 0, oh - 1)
    cols = tf.clip_by_value(tf.range(w) - (w - ow) // 2, 0, ow - 1)
    return tf.gather(tf.gather(box, rows, axis=1), cols, axis=2)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanPool2D(layers.Layer):
    """The statistics of NAFNet's channel attention: the mean over the whole map (`window=None`, as trained), or,
    with test-time local conversion (TLC, Chu et al. 2022), over a `window`-pixel box around each pixel, so a
    model trained on crops sees crop-sized statistics on a whole frame, and tiles of a frame agree."""

    def __init__(self, window: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = None if window is None else int(window)

    def call(self, x: Any) -> Any:
        frame = getattr(
            self, "_frame_stats", None
        )  # set only on inference copies, by train.inference.frame_stats
        if self.window is None and frame is not None:
            ones = ops.ones_like(ops.cast(x[:, :1, :1, :], "float32"))
            return ops.cast(
                ones * ops.reshape(ops.cast(frame[0], "float32"), (1, 1, 1, -1)), self.compute_dtype
            )
        if self.window is None:
            return ops.cast(ops.mean(ops.cast(x, "float32"), axis=[1, 2], keepdims=True), self.compute_dtype)
        return ops.cast(box_mean(x, self.window), self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        if self.window is None:
            return (input_shape[0], 1, 1, input_shape[-1])
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "window": self.window}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PixelShuffle(layers.Layer):
    """Sub-pixel upsampling: [h, w, c * r * r] -> [h * r, w * r, c] (TensorFlow's depth_to_space)."""

    def __init__(self, block: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.block = int(block)

    def call(self, x: Any) -> Any:
        import tensorflow as tf

        return tf.nn.depth_to_space(x, self.block)

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
class UpsampleNearest(layers.Layer):
    """x`factor` nearest-neighbour upsampling that keeps the channel count static in the graph (Keras'
    UpSampling2D loses it on images of unknown size, which TFLite's converter cannot take). Its gradient, each
    input pixel's f x f output gradients summed, is a sum pool: XLA compiles it (train.jit_compile), where
    TensorFlow's own ResizeNearestNeighborGrad has no XLA kernel."""

    def __init__(self, factor: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x: Any) -> Any:
        import tensorflow as tf

        f = self.factor

        @tf.custom_gradient
        def upsample(v: Any) -> Any:
            shape = tf.shape(v)
            y = tf.image.resize(v, tf.stack([shape[1] * f, shape[2] * f]), method="nearest")

            def grad(dy: Any) -> Any:
                return tf.nn.avg_pool2d(dy, f, f, "VALID") * float(f * f)

            return tf.cast(y, v.dtype), grad

        return tf.ensure_shape(upsample(x), [None, None, None, x.shape[-1]])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        b, h, w, c = input_shape
        f = self.factor
        return (b, None if h is None else h * f, None if w is None else w * f, c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}
