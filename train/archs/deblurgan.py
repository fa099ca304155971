"""DeblurGAN's generator (Kupyn et al. 2018): a fully convolutional ResNet that predicts a residual.

head 7x7 conv -> two stride-2 convs -> `blocks` residual blocks -> two (resize + conv) upsamplings -> 7x7 conv,
tanh, added to the input and clipped (`clip(input + residual, -1, 1)`). Instance normalization (per example, no
batch statistics) keeps a step identical on 1 or N replicas. The last conv starts at zero, so an untrained
generator is exactly the identity: training starts from the blurred input, never below it. Inputs and outputs are
RGB in [-1, 1]; height and width must be multiples of 4 and at least 8.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from train.archs.base import Arch, ArchSettings, conv_reach, upsample_reach

STRIDE = 4  # two stride-2 stages
MIN_SIZE = 8  # the residual blocks reflect-pad by 1 at 1/4 scale: at least 2 pixels there


class DeblurGanSettings(ArchSettings):
    arch: Literal["deblurgan"] = "deblurgan"
    filters: int = Field(64, ge=1, le=1024)
    blocks: int = Field(9, ge=0, le=64)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)


def _conv_norm_relu(x: Any, filters: int, kernel: int, strides: int, name: str, dtype: Any) -> Any:
    from keras import layers

    from train.archs.layers import InstanceNormalization

    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv", dtype=dtype
    )(x)
    x = InstanceNormalization(name=f"{name}_norm", dtype=dtype)(x)
    return layers.ReLU(name=f"{name}_relu", dtype=dtype)(x)


def _res_block(x: Any, filters: int, dropout: float, name: str, dtype: Any) -> Any:
    """conv-norm-relu-dropout-conv-norm, added to the block input (reflect padding keeps borders clean)."""
    from keras import layers

    from train.archs.layers import InstanceNormalization, ReflectionPadding2D

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


def build(
    settings: DeblurGanSettings, dtype: Any = None, tlc_base: int | None = None, name: str = "generator"
) -> Any:
    """The generator for `settings`; `tlc_base` does not apply (instance norm has no learned statistics)."""
    import keras
    from keras import layers

    from train.archs.layers import GlobalSkip, InstanceNormalization, ReflectionPadding2D, UpsampleNearest

    f = settings.filters
    blurred = keras.Input(shape=(None, None, 3), name="blurred")
    x = ReflectionPadding2D(3, name="head_pad", dtype=dtype)(blurred)
    x = layers.Conv2D(f, 7, use_bias=False, name="head_conv", dtype=dtype)(x)
    x = InstanceNormalization(name="head_norm", dtype=dtype)(x)
    x = layers.ReLU(name="head_relu", dtype=dtype)(x)
    for i, mult in enumerate((2, 4)):  # downsample: two stride-2 convs
        x = _conv_norm_relu(x, f * mult, 3, 2, f"down{i + 1}", dtype)
    for i in range(settings.blocks):
        x = _res_block(x, f * 4, settings.dropout, f"block{i + 1}", dtype)
    for i, mult in enumerate((2, 1)):  # upsample by resize + conv: no transposed-conv checkerboard
        x = UpsampleNearest(2, name=f"up{i + 1}_resize", dtype=dtype)(x)
        x = _conv_norm_relu(x, f * mult, 3, 1, f"up{i + 1}", dtype)
    x = ReflectionPadding2D(3, name="tail_pad", dtype=dtype)(x)
    # The last conv, tanh and skip stay float32: a bfloat16/float16 residual would quantize the output image.
    x = layers.Conv2D(3, 7, kernel_initializer="zeros", name="tail_conv", dtype="float32")(x)
    residual = layers.Activation("tanh", name="tail_tanh", dtype="float32")(x)
    sharp = GlobalSkip(name="global_skip", dtype="float32")([blurred, residual])
    return keras.Model(blurred, sharp, name=name)


def context(s: DeblurGanSettings) -> int:
    """Receptive-field radius (see Arch): 18 + 8 per residual block (90 px for the default 9 blocks)."""
    return (
        conv_reach(7)  # head, reflect-padded 7x7
        + conv_reach(3, 2, 1)  # down1
        + conv_reach(3, 2, 2)  # down2
        + s.blocks * 2 * conv_reach(3, 1, 4)  # two 3x3 convs per block at 1/4 scale
        + upsample_reach(2, 2)
        + conv_reach(3, 1, 2)  # up1
        + upsample_reach(2, 1)
        + conv_reach(3)  # up2
        + conv_reach(7)  # tail
    )


def shape_keys(s: DeblurGanSettings) -> dict[str, Any]:
    # Dropout adds an RNG state variable: on/off changes what the checkpoint holds, its rate does not.
    return {"filters": s.filters, "blocks": s.blocks, "has_dropout": s.dropout > 0}


ARCH = Arch(
    name="deblurgan",
    settings=DeblurGanSettings,
    build=build,
    stride=lambda s: STRIDE,
    min_size=lambda s: MIN_SIZE,
    input_range=(-1.0, 1.0),
    shape_keys=shape_keys,
    context=context,
)
