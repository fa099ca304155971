"""Restormer (Zamir et al. 2022, "Restormer: Efficient Transformer for High-Resolution Image Restoration"), as
published (swz30/Restormer `basicsr/models/archs/restormer_arch.py`), in Keras.

A 4-level U-Net of transformer blocks: 3x3 patch embedding (dim channels); per encoder level, blocks, then a 3x3
conv halving the channels and a pixel unshuffle (x4 channels, half the size); the latent blocks; per decoder level,
a 3x3 conv doubling the channels and a pixel shuffle, the skip concatenated (a 1x1 conv reduces the channels at
levels 3 and 2, not at level 1, which runs at 2 x dim), blocks; refinement blocks; a 3x3 output conv; the input
added (global residual). A transformer block:
  x + MDTA(LN(x)): 1x1 conv to q|k|v, 3x3 depthwise conv, per-head channel attention (q and k L2-normalized over
  all pixels, their cosine matrix times a learned temperature, softmax), 1x1 conv;
  x + GDFN(LN(x)): 1x1 conv to 2 x hidden (hidden = int(c x ffn_expansion_factor)), 3x3 depthwise conv,
  gelu(half) x other half, 1x1 conv.
Images are RGB in [0, 1]; height and width must be multiples of 8. The defaults are the motion-deblurring model
(26,126,644 parameters, 32.92 dB on GoPro). Keras layers are named after the PyTorch modules (`encoder_level1_0_…`
for `encoder_level1.0.…`), one Keras weight per PyTorch tensor (`torch_table`).

The attention's cosine matrix is a whole-image statistic: tiled inference computes it over the whole frame
(train/inference/frame_stats.py). There is no test-time local variant here (TLC is NAFNet's).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from train.archs import torch_layout as tl
from train.archs.base import Arch, ArchSettings, conv_reach, upsample_reach

LEVELS = 4
STRIDE = 2 ** (LEVELS - 1)  # three pixel-unshuffle downsamplings


class RestormerSettings(ArchSettings):
    arch: Literal["restormer"] = "restormer"
    dim: int = Field(48, ge=2, le=1024)
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    num_refinement_blocks: int = Field(4, ge=0, le=256)
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = Field(2.66, gt=0.0, le=64.0)
    bias: bool = False
    layer_norm: Literal["with_bias", "bias_free"] = "with_bias"  # WithBias for deblurring

    @model_validator(mode="after")
    def _shapes_fit(self) -> RestormerSettings:
        if self.dim % 2:
            raise ValueError(
                f"dim={self.dim} must be even (the first downsampling halves it before unshuffling)"
            )
        if any(not 0 <= n <= 256 for n in self.num_blocks):
            raise ValueError(f"num_blocks={list(self.num_blocks)}: each level holds 0..256 blocks")
        for level, heads in enumerate(self.heads):
            chans = self.dim * 2**level
            if heads < 1 or chans % heads:
                raise ValueError(
                    f"heads={list(self.heads)}: level {level + 1} has {chans} channels, not divisible by {heads} "
                    "heads"
                )
        if int(self.dim * self.ffn_expansion_factor) < 1:
            raise ValueError(f"ffn_expansion_factor={self.ffn_expansion_factor} leaves no hidden channels")
        return self


def hidden(channels: int, s: RestormerSettings) -> int:
    """The GDFN's hidden width, computed as the reference does (`int(dim * ffn_expansion_factor)`)."""
    return int(channels * s.ffn_expansion_factor)


def _kaiming_uniform() -> Any:
    """PyTorch's default conv initialization (uniform, bound 1/sqrt(fan_in))."""
    import keras

    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def _conv(filters: int, kernel: int, name: str, bias: bool, dtype: Any) -> Any:
    from keras import layers

    return layers.Conv2D(
        filters,
        kernel,
        padding="same",
        use_bias=bias,
        kernel_initializer=_kaiming_uniform(),
        name=name,
        dtype=dtype,
    )


def _dwconv(name: str, bias: bool, dtype: Any) -> Any:
    from keras import layers

    return layers.DepthwiseConv2D(
        3, padding="same", use_bias=bias, depthwise_initializer=_kaiming_uniform(), name=name, dtype=dtype
    )


def _norm(s: RestormerSettings, name: str, dtype: Any) -> Any:
    from keras import layers

    from train.archs.restormer_layers import BiasFreeLayerNorm

    if s.layer_norm == "bias_free":
        return BiasFreeLayerNorm(1e-5, name=name, dtype=dtype)
    return layers.LayerNormalization(axis=-1, epsilon=1e-5, name=name, dtype=dtype)


def _block(x: Any, c: int, heads: int, s: RestormerSettings, name: str, dtype: Any) -> Any:
    """One TransformerBlock (`NAME_*` layers for torch `NAME.*`)."""
    from keras import layers

    from train.archs.restormer_layers import ChannelAttention, GeluGate

    y = _norm(s, f"{name}_norm1", dtype)(x)
    y = _conv(3 * c, 1, f"{name}_attn_qkv", s.bias, dtype)(y)
    y = _dwconv(f"{name}_attn_qkv_dwconv", s.bias, dtype)(y)
    y = ChannelAttention(heads, name=f"{name}_attn", dtype=dtype)(y)
    y = _conv(c, 1, f"{name}_attn_project_out", s.bias, dtype)(y)
    x = layers.Add(name=f"{name}_add1", dtype=dtype)([x, y])
    y = _norm(s, f"{name}_norm2", dtype)(x)
    y = _conv(2 * hidden(c, s), 1, f"{name}_ffn_project_in", s.bias, dtype)(y)
    y = _dwconv(f"{name}_ffn_dwconv", s.bias, dtype)(y)
    y = GeluGate(name=f"{name}_ffn_gate", dtype=dtype)(y)
    y = _conv(c, 1, f"{name}_ffn_project_out", s.bias, dtype)(y)
    return layers.Add(name=f"{name}_add2", dtype=dtype)([x, y])


def _blocks(x: Any, count: int, c: int, heads: int, s: RestormerSettings, name: str, dtype: Any) -> Any:
    for i in range(count):
        x = _block(x, c, heads, s, f"{name}_{i}", dtype)
    return x


# (encoder module, downsampling after it) per level; the 4th level's blocks are `latent`.
_ENCODERS = ("encoder_level1", "encoder_level2", "encoder_level3", "latent")
_DOWNS = ("down1_2", "down2_3", "down3_4")
_UPS = ("up4_3", "up3_2", "up2_1")  # into decoder levels 3, 2, 1


def build(
    settings: RestormerSettings, dtype: Any = None, tlc_base: int | None = None, name: str = "generator"
) -> Any:
    """The Restormer for `settings`; `tlc_base` does not apply (no test-time local variant)."""
    import keras
    from keras import layers

    from train.archs.restormer_layers import TorchPixelShuffle, TorchPixelUnshuffle

    s, d = settings, settings.dim
    image = keras.Input(shape=(None, None, 3), name="blurred")
    x = _conv(d, 3, "patch_embed_proj", s.bias, dtype)(image)
    skips = []
    for level in range(LEVELS):
        chans = d * 2**level
        x = _blocks(x, s.num_blocks[level], chans, s.heads[level], s, _ENCODERS[level], dtype)
        if level < LEVELS - 1:
            skips.append(x)
            x = _conv(chans // 2, 3, f"{_DOWNS[level]}_conv", False, dtype)(x)
            x = TorchPixelUnshuffle(2, name=f"{_DOWNS[level]}_unshuffle", dtype=dtype)(x)
    for i, level in enumerate((3, 2, 1)):  # decoder levels, 1-based as the reference names them
        chans = d * 2**level  # the channels coming up from the level below
        x = _conv(2 * chans, 3, f"{_UPS[i]}_conv", False, dtype)(x)
        x = TorchPixelShuffle(2, name=f"{_UPS[i]}_shuffle", dtype=dtype)(x)
        x = layers.Concatenate(axis=-1, name=f"concat_level{level}", dtype=dtype)([x, skips.pop()])
        if level > 1:
            x = _conv(chans // 2, 1, f"reduce_chan_level{level}", s.bias, dtype)(x)
        width = chans // 2 if level > 1 else 2 * d
        x = _blocks(x, s.num_blocks[level - 1], width, s.heads[level - 1], s, f"decoder_level{level}", dtype)
    x = _blocks(x, s.num_refinement_blocks, 2 * d, s.heads[0], s, "refinement", dtype)
    # The output conv and the residual stay float32: a bfloat16/float16 output would quantize the image.
    x = _conv(3, 3, "output", s.bias, "float32")(x)
    restored = layers.Add(name="global_residual", dtype="float32")([x, image])
    return keras.Model(image, restored, name=name)


def shape_keys(s: RestormerSettings) -> dict[str, Any]:
    # Every setting fixes some weight's shape or presence (heads: the temperatures; the factor: GDFN widths).
    return {k: v for k, v in s.model_dump(mode="json").items() if k != "arch"}


# ---- the reference code's names ----------------------------------------------------------------------------


def _torch_block(prefix: str, s: RestormerSettings) -> list[tl.Row]:
    """A TransformerBlock: torch `PREFIX.*` -> Keras `PREFIX(with _)_*`."""
    layer = prefix.replace(".", "_")
    rows = []
    for norm in ("norm1", "norm2"):
        rows.append(tl.Row(f"{prefix}.{norm}.body.weight", f"{layer}_{norm}", 0))
        if s.layer_norm == "with_bias":
            rows.append(tl.Row(f"{prefix}.{norm}.body.bias", f"{layer}_{norm}", 1))
    for conv in ("attn.qkv", "attn.project_out", "ffn.project_in", "ffn.project_out"):
        rows += tl.conv_rows(f"{prefix}.{conv}", f"{layer}_{conv.replace('.', '_')}", bias=s.bias)
    for conv in ("attn.qkv_dwconv", "ffn.dwconv"):
        rows += tl.conv_rows(
            f"{prefix}.{conv}", f"{layer}_{conv.replace('.', '_')}", bias=s.bias, layout=tl.DEPTHWISE
        )
    heads = _heads_of(prefix, s)
    rows.append(
        tl.Row(f"{prefix}.attn.temperature", f"{layer}_attn", 0, tl.reshaped((heads, 1, 1), (heads,)))
    )
    return rows


def _heads_of(prefix: str, s: RestormerSettings) -> int:
    module = prefix.split(".", 1)[0]
    if module in ("refinement", "decoder_level1", "encoder_level1"):
        return s.heads[0]
    if module == "latent":
        return s.heads[3]
    return s.heads[int(module[-1]) - 1]


def _modules(s: RestormerSettings) -> list[tuple[str, int]]:
    """Every block list and its length."""
    blocks = list(zip(_ENCODERS, s.num_blocks, strict=True))
    blocks += [(f"decoder_level{level}", s.num_blocks[level - 1]) for level in (3, 2, 1)]
    return [*blocks, ("refinement", s.num_refinement_blocks)]


def torch_table(s: RestormerSettings) -> list[tl.Row]:
    """Every tensor of the reference `Restormer` (dual_pixel_task off) for settings `s`."""
    rows = tl.conv_rows("patch_embed.proj", "patch_embed_proj", bias=s.bias)
    rows += tl.conv_rows("output", "output", bias=s.bias)
    for module, count in _modules(s):
        rows += [r for i in range(count) for r in _torch_block(f"{module}.{i}", s)]
    for name in (*_DOWNS, *_UPS):  # Sequential(Conv2d(bias=False), Pixel(Un)Shuffle): same channel order here
        rows += tl.conv_rows(f"{name}.body.0", f"{name}_conv", bias=False)
    for level in (3, 2):
        rows += tl.conv_rows(f"reduce_chan_level{level}", f"reduce_chan_level{level}", bias=s.bias)
    return rows


def _ffn_factor(pairs: list[tuple[int, int]]) -> float | None:
    """The shortest decimal f with int(c * f) == hidden for every (c, hidden) pair (2.66 when it fits)."""
    if not pairs:
        return 2.66
    lo = max(h / c for c, h in pairs)
    hi = min((h + 1) / c for c, h in pairs)
    candidates = [2.66] + [round(-(-lo * 10**n // 1) / 10**n, n) for n in range(7)]
    for f in candidates:
        if lo - 1e-9 <= f < hi and all(int(c * f) == h for c, h in pairs):
            return f
    return None


def torch_infer(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any] | None:
    """Restormer's settings from a state dict's names and shapes, or None when it is not a Restormer's."""
    if "patch_embed.proj.weight" not in shapes or "down1_2.body.0.weight" not in shapes:
        return None
    dim = int(shapes["patch_embed.proj.weight"][0])

    def count(module: str) -> int:
        found = tl.indices(shapes, module)
        return found[-1] + 1 if found else 0

    num_blocks = [count(m) for m in _ENCODERS]
    defaults = RestormerSettings.model_fields["heads"].default
    heads = []
    for level in range(LEVELS):
        seen = [
            shapes[f"{m}.0.attn.temperature"][0]
            for m in (_ENCODERS[level], f"decoder_level{level + 1}")
            if f"{m}.0.attn.temperature" in shapes
        ]
        heads.append(int(seen[0]) if seen else defaults[level])
    pairs = [
        (int(shape[1]), int(shape[0]) // 2)
        for name, shape in shapes.items()
        if name.endswith(".ffn.project_in.weight") and len(shape) == 4
    ]
    factor = _ffn_factor(pairs)
    if factor is None:
        return None
    return {
        "arch": "restormer",
        "dim": dim,
        "num_blocks": num_blocks,
        "num_refinement_blocks": count("refinement"),
        "heads": heads,
        "ffn_expansion_factor": factor,
        "bias": "patch_embed.proj.bias" in shapes,
        "layer_norm": "with_bias" if any(n.endswith("norm1.body.bias") for n in shapes) else "bias_free",
    }


def context(s: RestormerSettings) -> int:
    """Receptive-field radius (see Arch): the two 3x3 depthwise convs of every transformer block (attention's
    qkv and the feed-forward's) at its level's scale, each downsampling (3x3 conv + pixel unshuffle) and
    upsampling (3x3 conv at the coarser scale + pixel shuffle), the refinement blocks, the patch embedding and
    the output conv. The attention's channel statistics (sums over all pixels) are frame statistics, not counted."""
    reach = conv_reach(3) + conv_reach(3)  # patch embedding, output
    reach += 2 * s.num_refinement_blocks * conv_reach(3)
    for level, count in enumerate(s.num_blocks):
        jump = 2**level
        reach += 2 * count * conv_reach(3, 1, jump)  # encoder (or latent) blocks
        if level < len(s.num_blocks) - 1:
            reach += conv_reach(3, 1, jump) + conv_reach(2, 2, jump)  # down: conv, then unshuffle
        if level > 0:
            reach += conv_reach(3, 1, jump) + upsample_reach(2, jump // 2)  # up into level - 1: conv, shuffle
            reach += 2 * s.num_blocks[level - 1] * conv_reach(3, 1, jump // 2)  # that decoder level's blocks
    return reach


ARCH = Arch(
    name="restormer",
    settings=RestormerSettings,
    build=build,
    stride=lambda s: STRIDE,
    min_size=lambda s: STRIDE,
    input_range=(0.0, 1.0),
    shape_keys=shape_keys,
    context=context,
    torch=tl.TorchNames("swz30/Restormer Restormer", torch_infer, torch_table),
)
