"""train.archs.restormer: the parameter count at the reference defaults (derived from the architecture), shapes,
its layers' values against numpy transcriptions of the reference code (PyTorch's pixel (un)shuffle order, the
bias-free norm, the gated GELU, MDTA's channel attention), its settings' checks, its PyTorch table and inference
of settings from names and shapes, and tiles that agree with the whole frame."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from test_deblurrer import loaded, per_tile_statistics, random_weights, smooth_image

from pipeline.config import load_config
from pipeline.errors import ConfigError
from train import archs
from train.archs import restormer
from train.archs.restormer_layers import (
    BiasFreeLayerNorm,
    ChannelAttention,
    GeluGate,
    TorchPixelShuffle,
    TorchPixelUnshuffle,
)
from train.inference import tiling
from train.inference.deblurrer import Deblurrer

SMALL = restormer.RestormerSettings(
    dim=4, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 2, 4), ffn_expansion_factor=2.66
)


@pytest.fixture
def float32_policy() -> None:
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def block_params(c: int, heads: int, s: restormer.RestormerSettings) -> int:
    """One TransformerBlock, counted from the reference code: two LayerNorms (weight, + bias WithBias), MDTA
    (1x1 c->3c, 3x3 depthwise on 3c, a temperature per head, 1x1 c->c), GDFN (1x1 c->2h, 3x3 depthwise on 2h,
    1x1 h->c, h = int(c * factor)); convs with biases only when `bias`."""
    b = int(s.bias)
    norms = 2 * (2 * c if s.layer_norm == "with_bias" else c)
    h = int(c * s.ffn_expansion_factor)
    attn = (c * 3 * c + b * 3 * c) + (9 * 3 * c + b * 3 * c) + heads + (c * c + b * c)
    ffn = (c * 2 * h + b * 2 * h) + (9 * 2 * h + b * 2 * h) + (h * c + b * c)
    return norms + attn + ffn


def restormer_params(s: restormer.RestormerSettings) -> int:
    d, b = s.dim, int(s.bias)
    total = (27 * d + b * d) + (9 * 2 * d * 3 + b * 3)  # patch embedding and output convs
    for level, (n, heads) in enumerate(zip(s.num_blocks, s.heads, strict=True)):
        total += n * block_params(d * 2**level, heads, s)
    total += sum(9 * c * (c // 2) for c in (d, 2 * d, 4 * d))  # downsampling convs (no bias)
    total += sum(9 * c * 2 * c for c in (8 * d, 4 * d, 2 * d))  # upsampling convs (no bias)
    total += (8 * d * 4 * d + b * 4 * d) + (4 * d * 2 * d + b * 2 * d)  # reduce_chan_level3, _level2
    total += s.num_blocks[2] * block_params(4 * d, s.heads[2], s) + s.num_blocks[1] * block_params(
        2 * d, s.heads[1], s
    )
    total += (s.num_blocks[0] + s.num_refinement_blocks) * block_params(2 * d, s.heads[0], s)
    return total


def test_reference_defaults_have_the_published_parameter_count(float32_policy: None) -> None:
    s = restormer.RestormerSettings()
    assert (s.dim, s.num_blocks, s.num_refinement_blocks, s.heads, s.ffn_expansion_factor, s.bias) == (
        48,
        (4, 6, 6, 8),
        4,
        (1, 2, 4, 8),
        2.66,
        False,
    )
    assert s.layer_norm == "with_bias"
    model = restormer.build(s)
    assert model.count_params() == restormer_params(s) == 26_126_644
    assert restormer.ARCH.stride(s) == 8 and restormer.ARCH.input_range == (0.0, 1.0)


@pytest.mark.parametrize(
    "settings",
    [SMALL, SMALL.model_copy(update={"bias": True, "layer_norm": "bias_free", "ffn_expansion_factor": 1.5})],
    ids=["with-bias-norm", "bias-free-norm-conv-biases"],
)
@pytest.mark.parametrize(("height", "width"), [(8, 8), (40, 56), (24, 72)])
def test_keeps_any_size_divisible_by_its_stride(
    float32_policy: None, settings: restormer.RestormerSettings, height: int, width: int
) -> None:
    model = restormer.build(settings)
    x = np.random.default_rng(0).uniform(0, 1, (2, height, width, 3)).astype(np.float32)
    y = model(x).numpy()
    assert y.shape == x.shape and np.isfinite(y).all()
    assert model.count_params() == restormer_params(settings)


def torch_pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    """nn.PixelShuffle on NCHW, by its definition: out[c, h r + i, w r + j] = in[c r^2 + i r + j, h, w]."""
    n, cin, h, w = x.shape
    out = np.zeros((n, cin // (r * r), h * r, w * r), x.dtype)
    for c in range(cin // (r * r)):
        for i in range(r):
            for j in range(r):
                out[:, c, i::r, j::r] = x[:, c * r * r + i * r + j]
    return out


def test_pixel_shuffle_and_unshuffle_use_pytorchs_channel_order() -> None:
    x = np.random.default_rng(1).normal(size=(2, 3, 5, 12)).astype(np.float32)  # NHWC, 12 = 3 * 2 * 2
    got = TorchPixelShuffle(2)(x).numpy()
    want = torch_pixel_shuffle(x.transpose(0, 3, 1, 2), 2).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(TorchPixelUnshuffle(2)(got).numpy(), x)  # the inverse
    assert got.shape == (2, 6, 10, 3)


def test_bias_free_norm_and_gelu_gate_values() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 3.0, (2, 3, 4, 6)).astype(np.float32)
    norm = BiasFreeLayerNorm()
    norm.build(x.shape)
    norm.weight.assign(np.linspace(0.5, 2.0, 6).astype(np.float32))
    want = x / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5) * np.linspace(0.5, 2.0, 6)  # mean not removed
    np.testing.assert_allclose(norm(x).numpy(), want, rtol=1e-5, atol=1e-5)
    a, b = x[..., :3], x[..., 3:]
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(GeluGate()(x).numpy(), 0.5 * a * (1 + erf(a / math.sqrt(2))) * b, atol=1e-5)


def mdta_reference(qkv: np.ndarray, heads: int, temperature: np.ndarray) -> np.ndarray:
    """Restormer's Attention.forward after qkv_dwconv, transcribed to numpy (NHWC in and out)."""
    b, h, w, c3 = qkv.shape
    c = c3 // 3
    # 'b (head c) h w -> b head c (h w)' for each of q, k, v
    chw = qkv.transpose(0, 3, 1, 2).reshape(b, 3, heads, c // heads, h * w)
    q, k, v = chw[:, 0], chw[:, 1], chw[:, 2]
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    k = k / np.maximum(np.linalg.norm(k, axis=-1, keepdims=True), 1e-12)
    attn = (q @ k.transpose(0, 1, 3, 2)) * temperature.reshape(1, heads, 1, 1)
    attn = np.exp(attn - attn.max(axis=-1, keepdims=True))
    attn /= attn.sum(axis=-1, keepdims=True)
    out = (attn @ v).reshape(b, c, h, w)
    return out.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_channel_attention_matches_the_reference(heads: int) -> None:
    rng = np.random.default_rng(heads)
    qkv = rng.normal(size=(2, 5, 7, 3 * 8)).astype(np.float32)
    layer = ChannelAttention(heads)
    layer.build(qkv.shape)
    temperature = rng.uniform(0.5, 3.0, heads).astype(np.float32)
    layer.temperature.assign(temperature)
    np.testing.assert_allclose(layer(qkv).numpy(), mdta_reference(qkv, heads, temperature), atol=1e-5)


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        ("{arch: restormer, dim: 7}", "dim=7 must be even"),
        (
            "{arch: restormer, dim: 6, heads: [1, 2, 4, 5]}",
            "level 4 has 48 channels, not divisible by 5 heads",
        ),
        ("{arch: restormer, layer_norm: none}", "train.generator.layer_norm"),
        ("{arch: restormer, width: 32}", "train.generator.width: unknown key"),
    ],
)
def test_config_checks_restormer_settings(tmp_path, generator: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"train: {{crop_size: 64, generator: {generator}}}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_config_takes_restormer_and_its_stride(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "train: {crop_size: 72, generator: {arch: restormer, dim: 16, num_blocks: [1, 1, 1, 1]}}\n"
    )
    cfg = load_config(path)
    assert cfg.train.generator == restormer.RestormerSettings(dim=16, num_blocks=(1, 1, 1, 1))
    path.write_text("train: {crop_size: 68, generator: {arch: restormer}}\n")
    with pytest.raises(ConfigError, match="crop_size=68 must be a multiple of 8"):
        load_config(path)


@pytest.mark.parametrize(
    "settings",
    [
        restormer.RestormerSettings(),
        SMALL.model_copy(update={"num_blocks": (2, 0, 1, 3), "bias": True, "layer_norm": "bias_free"}),
        SMALL.model_copy(update={"ffn_expansion_factor": 3.0, "num_refinement_blocks": 0}),
    ],
    ids=["defaults", "bias-free-uneven-blocks", "factor-3"],
)
def test_torch_table_covers_every_weight_and_settings_are_recognized(
    float32_policy: None, settings: restormer.RestormerSettings
) -> None:
    model = restormer.build(settings)
    table = restormer.torch_table(settings)
    assert len({r.torch_name for r in table}) == len(table) == len(model.weights)
    assert {(r.layer, r.index) for r in table} == {
        (layer.name, i) for layer in model.layers for i in range(len(layer.weights))
    }
    shapes = {}
    for row in table:
        weight = model.get_layer(row.layer).weights[row.index]
        shapes[row.torch_name] = row.layout.to_torch(np.zeros(weight.shape, np.float32)).shape
    assert shapes["patch_embed.proj.weight"] == (settings.dim, 3, 3, 3)
    inferred = restormer.torch_infer(shapes)
    assert restormer.RestormerSettings.model_validate(inferred) == settings
    assert archs.get("nafnet").torch.infer(shapes) is None  # not mistaken for the other importable arch


def test_tiles_agree_with_the_whole_frame_through_full_frame_attention(float32_policy: None) -> None:
    """The attention's cosine matrices are computed over the whole frame before the tiles run: tiles agree with
    the whole frame, where per-tile attention does not (a frame whose halves differ, sharpened attention)."""
    model = random_weights(restormer.build(SMALL, dtype="float32"), seed=5, scale=0.05)
    for layer in model.layers:
        if isinstance(layer, ChannelAttention):
            layer.temperature.assign(layer.temperature.numpy() * 4)
    spec = archs.spec_from_meta({"arch": restormer.ARCH.describe(SMALL, train_size=64)})
    smallest = tiling.min_tile(spec.tile_context(False), spec.stride)  # tiles overlap by the receptive field
    h, w = smallest - 8, smallest + 96
    img = smooth_image(h, w, seed=6)
    img[:, w // 2 :] = img[:, w // 2 :] // 4 + 160
    whole = Deblurrer(loaded(model, spec))(img).astype(np.float32)
    tiled_d = Deblurrer(loaded(model, spec), tile=smallest)
    tiled = tiled_d(img).astype(np.float32)
    assert len(tiled_d.plan(h, w).tiles) > 1
    assert np.abs(whole - img).mean() > 10  # the model changes the image
    assert np.abs(tiled - whole).mean() < 0.05 and np.abs(tiled - whole).max() <= 1
    naive = np.rint(per_tile_statistics(tiled_d, img.astype(np.float32) / 255) * 255)
    assert not np.array_equal(naive, whole)  # per-tile attention differs (tiles near the frame size here)
