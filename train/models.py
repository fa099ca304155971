"""DeblurGAN models: a fully convolutional ResNet generator and a PatchGAN critic, as small builder functions.

The generator predicts a residual added to its input (`clip(input + output, -1, 1)`) and its last conv starts at
zero, so it starts as the identity: a deblurring GAN then improves on the input within minutes. Both models take any (height, width); the
generator needs both divisible by `GENERATOR_STRIDE` and at least `GENERATOR_MIN_SIZE`. Instance normalization (per example, no batch statistics)
keeps a step identical on 1 or N replicas and keeps the critic's gradient penalty per-example, as WGAN-GP needs.
Convolutions followed by a normalization have no bias (the normalization cancels it). Custom layers are registered with Keras so a saved `generator.keras` loads with `keras.saving.load_model`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

GENERATOR_STRIDE = 4  # two stride-2 stages: inputs must be divisible by 4 per side
GENERATOR_MIN_SIZE = 8  # the residual blocks reflect-pad by 1 at 1/4 scale: at least 2 pixels there
PACKAGE = "gopro_deblur"


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
        mean, var = ops.moments(x32, axes=[1, 2], keepdims=True)
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


def _conv_norm_relu(x: Any, filters: int, kernel: int, strides: int, name: str, dtype: Any) -> Any:
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv", dtype=dtype
    )(x)
    x = InstanceNormalization(name=f"{name}_norm", dtype=dtype)(x)
    return layers.ReLU(name=f"{name}_relu", dtype=dtype)(x)


def _res_block(x: Any, filters: int, dropout: float, name: str, dtype: Any) -> Any:
    """conv-norm-relu-dropout-conv-norm, added to the block input (reflect padding keeps borders clean)."""
    y = ReflectionPadding2D(1, name=f"{name}_pad1", dtype=dtype)(x)
    y = layers.Conv2D(filters, 3, use_bias=False, name=f"{name}_conv1", dtype=dtype)(y)
    y = InstanceNormalization(name=f"{name}_norm1", dtype=dtype)(y)
    y = layers.ReLU(name=f"{name}_relu", dtype=dtype)(y)
    if dropout > 0:
        y = layers.Dropout(dropout, name=f"{name}_dropout", dtype=dtype)(y)
    y = ReflectionPadding2D(1, name=f"{name}_pad2", dtype=dtype)(y)
    y = layers.Conv2D(filters, 3, use_bias=False, name=f"{name}_conv2", dtype=dtype)(y)
    y = InstanceNormalization(name=f"{name}_norm2", dtype=dtype)(y)
    return layers.Add(name=f"{name}_add", dtype=dtype)([x, y])


def build_generator(
    filters: int = 64, blocks: int = 9, dropout: float = 0.5, name: str = "generator", dtype: Any = None
) -> keras.Model:
    """DeblurGAN ResNet generator: [-1, 1] RGB of any size divisible by 4 in, deblurred image of the same shape out.

    `dtype` is a Keras dtype policy for every layer but the float32 head (None: the global policy).
    """
    blurred = keras.Input(shape=(None, None, 3), name="blurred")
    x = ReflectionPadding2D(3, name="head_pad", dtype=dtype)(blurred)
    x = layers.Conv2D(filters, 7, use_bias=False, name="head_conv", dtype=dtype)(x)
    x = InstanceNormalization(name="head_norm", dtype=dtype)(x)
    x = layers.ReLU(name="head_relu", dtype=dtype)(x)
    for i, mult in enumerate((2, 4)):  # downsample: two stride-2 convs
        x = _conv_norm_relu(x, filters * mult, 3, 2, f"down{i + 1}", dtype)
    for i in range(blocks):
        x = _res_block(x, filters * 4, dropout, f"block{i + 1}", dtype)
    for i, mult in enumerate((2, 1)):  # upsample by resize + conv: no transposed-conv checkerboard
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i + 1}_resize", dtype=dtype)(x)
        x = _conv_norm_relu(x, filters * mult, 3, 1, f"up{i + 1}", dtype)
    x = ReflectionPadding2D(3, name="tail_pad", dtype=dtype)(x)
    # The last conv, tanh and skip stay float32: a bfloat16/float16 residual would quantize the output image.
    # Zero-initialized, so an untrained generator is exactly the identity and training can only improve on it.
    x = layers.Conv2D(3, 7, kernel_initializer="zeros", name="tail_conv", dtype="float32")(x)
    residual = layers.Activation("tanh", name="tail_tanh", dtype="float32")(x)
    sharp = GlobalSkip(name="global_skip", dtype="float32")([blurred, residual])
    return keras.Model(blurred, sharp, name=name)


def build_critic(filters: int = 64, name: str = "critic", dtype: Any = None) -> keras.Model:
    """PatchGAN critic (WGAN, no sigmoid): three stride-2 4x4 convs, then two stride-1 convs to a score map."""
    image = keras.Input(shape=(None, None, 3), name="image")
    x = layers.Conv2D(filters, 4, strides=2, padding="same", name="c1_conv", dtype=dtype)(image)
    x = layers.LeakyReLU(0.2, name="c1_lrelu", dtype=dtype)(x)
    for i, mult in enumerate((2, 4)):
        x = layers.Conv2D(
            filters * mult, 4, strides=2, padding="same", use_bias=False, name=f"c{i + 2}_conv", dtype=dtype
        )(x)
        x = InstanceNormalization(name=f"c{i + 2}_norm", dtype=dtype)(x)
        x = layers.LeakyReLU(0.2, name=f"c{i + 2}_lrelu", dtype=dtype)(x)
    x = layers.Conv2D(filters * 8, 4, padding="same", use_bias=False, name="c4_conv", dtype=dtype)(x)
    x = InstanceNormalization(name="c4_norm", dtype=dtype)(x)
    x = layers.LeakyReLU(0.2, name="c4_lrelu", dtype=dtype)(x)
    score = layers.Conv2D(1, 4, padding="same", name="score", dtype="float32")(x)
    return keras.Model(image, score, name=name)


def copy_generator(source: keras.Model, filters: int, blocks: int, dropout: float) -> keras.Model:
    """A float32 generator with `source`'s weights: versions load and run fast on any machine, whatever the
    precision policy used in training."""
    clone = build_generator(filters, blocks, dropout, name=source.name, dtype="float32")
    clone.set_weights(source.get_weights())
    return clone
