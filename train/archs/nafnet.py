"""NAFNet (Chen et al. 2022, "Simple Baselines for Image Restoration"), as published, in Keras.

A U-Net of NAF blocks: 3x3 intro conv; per level, NAF blocks then a 2x2 stride-2 conv doubling the channels;
middle blocks; per level, a 1x1 conv and a pixel shuffle halving the channels, the skip added, NAF blocks; 3x3 end
conv; the input added (global residual). A NAF block has no nonlinear activation:
  LayerNorm (over channels) -> 1x1 conv (2c) -> 3x3 depthwise conv -> SimpleGate -> simplified channel attention
  (mean pool, 1x1 conv, multiply) -> 1x1 conv, added with a learned per-channel scale that starts at 0;
  then LayerNorm -> 1x1 conv (2c) -> SimpleGate -> 1x1 conv, added with its own scale, also starting at 0.
Images are RGB in [0, 1] (as NAFNet trains); height and width must be multiples of 2^levels (16 for 4 levels).
Width 32 with enc [1, 1, 1, 28], middle 1, dec [1, 1, 1, 1] is the GOPRO model: 17.11 M parameters, 32.87 dB.

The channel attention's mean pool sees the whole image. At test time, `tlc_base` (test-time local converter,
Chu et al. 2022) makes it a local mean over a `tlc_base`-pixel window (NAFNet uses 1.5x the training crop),
restoring the statistics the model was trained with and making tiles of a large frame agree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from train.archs import torch_layout as tl
from train.archs.base import Arch, ArchSettings, conv_reach, upsample_reach

TLC_FACTOR = (
    1.5  # the local window, as a multiple of the training crop (NAFNet's base_size = 1.5 x train_size)
)


class NafNetSettings(ArchSettings):
    arch: Literal["nafnet"] = "nafnet"
    width: int = Field(32, ge=1, le=1024)
    enc_blocks: tuple[int, ...] = (1, 1, 1, 28)
    middle_blocks: int = Field(1, ge=0, le=256)
    dec_blocks: tuple[int, ...] = (1, 1, 1, 1)

    @model_validator(mode="after")
    def _levels_match(self) -> NafNetSettings:
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ValueError(
                f"enc_blocks has {len(self.enc_blocks)} levels but dec_blocks has {len(self.dec_blocks)}; "
                "they must match"
            )
        if len(self.enc_blocks) > 8 or any(not 0 <= n <= 256 for n in (*self.enc_blocks, *self.dec_blocks)):
            raise ValueError("at most 8 levels of 0..256 blocks each")
        return self


def stride(s: NafNetSettings) -> int:
    return 2 ** len(s.enc_blocks)


def _kaiming_uniform() -> Any:
    """PyTorch's default conv initialization (uniform, bound 1/sqrt(fan_in)), which NAFNet trains from."""
    import keras

    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def _naf_block(x: Any, c: int, name: str, window: int | None, dtype: Any) -> Any:
    from keras import layers

    from train.archs.layers import LayerScale, MeanPool2D, SimpleGate

    def conv(filters: int, kernel: int, label: str) -> Any:
        return layers.Conv2D(
            filters,
            kernel,
            padding="same",
            kernel_initializer=_kaiming_uniform(),
            name=f"{name}_{label}",
            dtype=dtype,
        )

    y = layers.LayerNormalization(axis=-1, epsilon=1e-6, name=f"{name}_norm1", dtype=dtype)(x)
    y = conv(2 * c, 1, "conv1")(y)
    y = layers.DepthwiseConv2D(
        3, padding="same", depthwise_initializer=_kaiming_uniform(), name=f"{name}_dwconv", dtype=dtype
    )(y)
    y = SimpleGate(name=f"{name}_gate1", dtype=dtype)(y)
    attention = MeanPool2D(window, name=f"{name}_sca_pool", dtype=dtype)(y)
    attention = conv(c, 1, "sca_conv")(attention)
    y = layers.Multiply(name=f"{name}_sca", dtype=dtype)([y, attention])
    y = conv(c, 1, "conv3")(y)
    x = layers.Add(name=f"{name}_add1", dtype=dtype)(
        [x, LayerScale(0.0, name=f"{name}_beta", dtype=dtype)(y)]
    )
    y = layers.LayerNormalization(axis=-1, epsilon=1e-6, name=f"{name}_norm2", dtype=dtype)(x)
    y = conv(2 * c, 1, "conv4")(y)
    y = SimpleGate(name=f"{name}_gate2", dtype=dtype)(y)
    y = conv(c, 1, "conv5")(y)
    return layers.Add(name=f"{name}_add2", dtype=dtype)(
        [x, LayerScale(0.0, name=f"{name}_gamma", dtype=dtype)(y)]
    )


def build(
    settings: NafNetSettings, dtype: Any = None, tlc_base: int | None = None, name: str = "generator"
) -> Any:
    """The NAFNet for `settings`; `tlc_base` (input pixels, None: global statistics as trained) turns on TLC."""
    import keras
    from keras import layers

    from train.archs.layers import PixelShuffle

    def window(scale: int) -> int | None:
        return None if tlc_base is None else max(1, int(tlc_base) // scale)

    image = keras.Input(shape=(None, None, 3), name="blurred")
    init = _kaiming_uniform
    x = layers.Conv2D(
        settings.width, 3, padding="same", kernel_initializer=init(), name="intro", dtype=dtype
    )(image)
    chan, scale, skips = settings.width, 1, []
    for level, count in enumerate(settings.enc_blocks, 1):
        for b in range(count):
            x = _naf_block(x, chan, f"enc{level}_block{b + 1}", window(scale), dtype)
        skips.append(x)
        x = layers.Conv2D(
            2 * chan, 2, strides=2, kernel_initializer=init(), name=f"down{level}", dtype=dtype
        )(x)
        chan, scale = chan * 2, scale * 2
    for b in range(settings.middle_blocks):
        x = _naf_block(x, chan, f"middle_block{b + 1}", window(scale), dtype)
    for level, count in enumerate(settings.dec_blocks, 1):
        x = layers.Conv2D(
            2 * chan, 1, use_bias=False, kernel_initializer=init(), name=f"up{level}_conv", dtype=dtype
        )(x)
        x = PixelShuffle(2, name=f"up{level}_shuffle", dtype=dtype)(x)
        chan, scale = chan // 2, scale // 2
        x = layers.Add(name=f"up{level}_skip", dtype=dtype)([x, skips.pop()])
        for b in range(count):
            x = _naf_block(x, chan, f"dec{level}_block{b + 1}", window(scale), dtype)
    # The end conv and the residual stay float32: a bfloat16/float16 output would quantize the image.
    x = layers.Conv2D(3, 3, padding="same", kernel_initializer=init(), name="ending", dtype="float32")(x)
    restored = layers.Add(name="global_residual", dtype="float32")([x, image])
    return keras.Model(image, restored, name=name)


def shape_keys(s: NafNetSettings) -> dict[str, Any]:
    return {
        "width": s.width,
        "enc_blocks": list(s.enc_blocks),
        "middle_blocks": s.middle_blocks,
        "dec_blocks": list(s.dec_blocks),
    }


def context(s: NafNetSettings) -> int:
    """Receptive-field radius (see Arch): the 3x3 depthwise conv of every NAF block at its level's scale, the
    2x2 stride-2 downsamplings and pixel-shuffle upsamplings, intro and ending convs (294 px for the GOPRO
    width-32 model). The channel attention's pool is a statistic, not counted (global: computed over the whole
    frame first; TLC: local windows, which tiles see cut near their borders; measured within a level)."""
    reach = conv_reach(3) + conv_reach(3)  # intro, ending
    for level, (enc, dec) in enumerate(zip(s.enc_blocks, reversed(s.dec_blocks), strict=True)):
        jump = 2**level
        reach += enc * conv_reach(3, 1, jump) + conv_reach(2, 2, jump)  # blocks, then down
        reach += upsample_reach(2, jump) + dec * conv_reach(3, 1, jump)  # up (1x1 conv + shuffle), blocks
    return reach + s.middle_blocks * conv_reach(3, 1, 2 ** len(s.enc_blocks))


def tlc_base(train_size: int) -> int:
    """The TLC window for a model trained on `train_size` crops."""
    return int(train_size * TLC_FACTOR)


# ---- the reference code's names (megvii-research/NAFNet basicsr/models/archs/NAFNet_arch.py) -------------------

_BLOCK_CONVS = ("conv1", "conv3", "conv4", "conv5")  # 1x1 convs, same names on both sides


def _torch_block(prefix: str, layer: str) -> list[tl.Row]:
    """A NAFBlock: torch `PREFIX.*` -> Keras `LAYER_*` (train/archs/nafnet.py `_naf_block`)."""
    rows = [r for conv in _BLOCK_CONVS for r in tl.conv_rows(f"{prefix}.{conv}", f"{layer}_{conv}")]
    rows += tl.conv_rows(f"{prefix}.conv2", f"{layer}_dwconv", layout=tl.DEPTHWISE)
    rows += tl.conv_rows(f"{prefix}.sca.1", f"{layer}_sca_conv")
    for norm in ("norm1", "norm2"):  # LayerNorm2d weight/bias -> LayerNormalization gamma/beta
        rows += [
            tl.Row(f"{prefix}.{norm}.weight", f"{layer}_{norm}", 0),
            tl.Row(f"{prefix}.{norm}.bias", f"{layer}_{norm}", 1),
        ]
    rows += [tl.Row(f"{prefix}.{s}", f"{layer}_{s}", 0, tl.CHANNEL_SCALE) for s in ("beta", "gamma")]
    return rows


def torch_table(s: NafNetSettings) -> list[tl.Row]:
    """Every tensor of the reference `NAFNet` (and `NAFNetLocal`, same names) for settings `s`."""
    rows = tl.conv_rows("intro", "intro") + tl.conv_rows("ending", "ending")
    chan = s.width
    for i, count in enumerate(s.enc_blocks):
        rows += [
            r for b in range(count) for r in _torch_block(f"encoders.{i}.{b}", f"enc{i + 1}_block{b + 1}")
        ]
        rows += tl.conv_rows(f"downs.{i}", f"down{i + 1}")
        chan *= 2
    rows += [
        r for b in range(s.middle_blocks) for r in _torch_block(f"middle_blks.{b}", f"middle_block{b + 1}")
    ]
    for i, count in enumerate(s.dec_blocks):
        # ups.i = Sequential(Conv2d(chan, 2 chan, 1, bias=False), PixelShuffle(2)): chan // 2 channels out
        rows += tl.conv_rows(f"ups.{i}.0", f"up{i + 1}_conv", bias=False, layout=tl.shuffle_conv(chan // 2))
        chan //= 2
        rows += [
            r for b in range(count) for r in _torch_block(f"decoders.{i}.{b}", f"dec{i + 1}_block{b + 1}")
        ]
    return rows


def torch_infer(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any] | None:
    """NAFNet's settings from a state dict's names and shapes (levels from `downs`/`ups`, blocks per level from
    the block indices, width from `intro`), or None when it is not a NAFNet's."""
    if "intro.weight" not in shapes or "downs.0.weight" not in shapes or "ups.0.0.weight" not in shapes:
        return None
    levels = len(tl.indices(shapes, "downs"))
    if levels != len(tl.indices(shapes, "ups")):
        return None

    def blocks(prefix: str) -> int:
        found = tl.indices(shapes, prefix)
        return found[-1] + 1 if found else 0

    return {
        "arch": "nafnet",
        "width": int(shapes["intro.weight"][0]),
        "enc_blocks": [blocks(f"encoders.{i}") for i in range(levels)],
        "middle_blocks": blocks("middle_blks"),
        "dec_blocks": [blocks(f"decoders.{i}") for i in range(levels)],
    }


ARCH = Arch(
    name="nafnet",
    settings=NafNetSettings,
    build=build,
    stride=stride,
    min_size=stride,
    input_range=(0.0, 1.0),
    shape_keys=shape_keys,
    context=context,
    has_global_statistics=True,
    torch=tl.TorchNames("megvii-research/NAFNet NAFNet / NAFNetLocal", torch_infer, torch_table),
)
