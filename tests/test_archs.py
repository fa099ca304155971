"""train.archs: the registry, DeblurGAN and NAFNet (shapes, parameter counts, custom layers' values, TLC),
precision, and save/load of a generator version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from train import archs
from train.archs import deblurgan, layers, nafnet, restormer
from train.archs.critic import build_critic
from train.run.versions import load_generator, write_version

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def float32_policy() -> None:
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(("height", "width"), [(12, 20), (36, 28), (8, 8), (44, 100)])
def test_generator_keeps_any_size_divisible_by_stride(float32_policy: None, height: int, width: int) -> None:
    g = deblurgan.build(deblurgan.DeblurGanSettings(filters=4, blocks=1, dropout=0.0))
    x = np.random.default_rng(0).uniform(-1, 1, (2, height, width, 3)).astype(np.float32)
    y = g(x, training=False).numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= -1.0 and y.max() <= 1.0
    s = deblurgan.DeblurGanSettings()
    assert deblurgan.ARCH.stride(s) == 4 and deblurgan.ARCH.min_size(s) == 8


@pytest.mark.parametrize(("height", "width", "out"), [(32, 32, (4, 4)), (20, 36, (3, 5)), (12, 28, (2, 4))])
def test_critic_score_map_is_one_eighth_rounded_up(
    float32_policy: None, height: int, width: int, out: tuple
) -> None:
    c = build_critic(filters=4)
    score = c(np.zeros((3, height, width, 3), np.float32)).numpy()
    assert score.shape == (3, *out, 1)


def test_reflection_padding_matches_numpy_reflect() -> None:
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    got = layers.ReflectionPadding2D(2)(x).numpy()
    assert np.array_equal(got, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))


def test_instance_norm_normalizes_each_example_and_channel() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(3.0, 5.0, (2, 6, 7, 3)) * np.array([1, 10, 100])).astype(np.float32)
    y = layers.InstanceNormalization()(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1.0, atol=1e-3)
    expect = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expect, atol=1e-4)


def test_global_skip_adds_and_clips() -> None:
    image = np.array([[[[0.5, -0.9, 0.0]]]], np.float32)
    residual = np.array([[[[0.7, -0.5, 0.25]]]], np.float32)
    got = layers.GlobalSkip()([image, residual]).numpy()
    assert np.allclose(got, [[[[1.0, -1.0, 0.25]]]])


def test_mixed_precision_keeps_the_head_float32() -> None:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        g = deblurgan.build(deblurgan.DeblurGanSettings(filters=4, blocks=1))
        c = build_critic(filters=4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert g.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert g.get_layer("tail_conv").compute_dtype == "float32"
    assert g.output.dtype == "float32" and c.output.dtype == "float32"
    copy = archs.float32_copy(deblurgan.DeblurGanSettings(filters=4, blocks=1), g)
    assert all(layer.compute_dtype == "float32" for layer in copy.layers)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(copy(x).numpy(), g(x).numpy(), atol=0.05)  # bf16 vs f32 arithmetic


# `import train` alone must make a saved generator loadable (README), without importing Keras itself, in either
# order: train first (its import hook registers our layers when Keras arrives), or Keras first.
LOAD_IN_FRESH_PROCESS = {
    "train first": (
        "import sys, train; "
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'import train imported Keras'; "
        "import numpy as np, keras; "
    ),
    "keras first": "import sys, numpy as np, keras, train; ",
    # TensorFlow looks Keras up (importlib.util.find_spec) long before it imports it.
    "tensorflow after train": "import sys, train, tensorflow, numpy as np, keras; ",
}


SMALL_NAFNET = nafnet.NafNetSettings(width=4, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
SMALL_RESTORMER = restormer.RestormerSettings(
    dim=4, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 2, 4)
)


@pytest.mark.parametrize(
    ("order", "settings"),
    [
        ("train first", deblurgan.DeblurGanSettings(filters=4, blocks=2, dropout=0.5)),
        ("keras first", deblurgan.DeblurGanSettings(filters=4, blocks=2, dropout=0.5)),
        ("tensorflow after train", deblurgan.DeblurGanSettings(filters=4, blocks=2, dropout=0.5)),
        ("train first", SMALL_NAFNET),
        ("train first", SMALL_RESTORMER),
    ],
    ids=[
        "deblurgan-train-first",
        "deblurgan-keras-first",
        "deblurgan-tf-after-train",
        "nafnet-train-first",
        "restormer-train-first",
    ],
)
def test_version_saves_and_loads_with_keras_load_model(
    float32_policy: None, tmp_path: Path, order: str, settings: archs.ArchSettings
) -> None:
    g = archs.build(settings)
    rng = np.random.default_rng(3)
    # Random weights everywhere: an untrained generator is the identity (zero last conv), which would hide a
    # version that saved no weights at all.
    g.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in g.get_weights()])
    x = rng.uniform(-1, 1, (1, 16, 20 if settings.arch == "deblurgan" else 32, 3)).astype(np.float32)
    expect = g(x, training=False).numpy()
    assert np.abs(expect - x).max() > 1e-2
    path = Path(write_version(tmp_path, g, {"step": 7, "metrics": {}}))
    assert path.name == "v0001" and (tmp_path / "generator" / "latest").read_text().strip() == "v0001"
    np.testing.assert_allclose(load_generator(path)(x, training=False).numpy(), expect, atol=1e-6)
    np.save(tmp_path / "x.npy", x)
    code = LOAD_IN_FRESH_PROCESS[order] + (
        "m = keras.saving.load_model(sys.argv[1]); "
        "np.save(sys.argv[3], m(np.load(sys.argv[2]), training=False).numpy())"
    )
    args = [str(path / "generator.keras"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, timeout=120, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expect, atol=1e-6)


def test_untrained_generator_is_the_identity(float32_policy: None) -> None:
    """Global skip + zero-initialized last conv: training starts from the blurred input, never below it."""
    g = deblurgan.build(deblurgan.DeblurGanSettings(filters=8, blocks=1, dropout=0.0))
    x = tf.random.stateless_uniform((1, 16, 16, 3), [0, 1], -1.0, 1.0)
    assert np.array_equal(g(x).numpy(), x.numpy())


# ---- NAFNet -------------------------------------------------------------------------------------------------


def naf_block_params(c: int) -> int:
    """One NAF block, counted from the architecture: two LayerNorms (2c each), 1x1 c->2c, 3x3 depthwise on 2c,
    the attention's 1x1 c->c, 1x1 c->c, 1x1 c->2c, 1x1 c->c (all with biases), and two per-channel scales."""
    norms, scales = 2 * (2 * c), 2 * c
    convs = (
        (c * 2 * c + 2 * c)
        + (9 * 2 * c + 2 * c)
        + (c * c + c)
        + (c * c + c)
        + (c * 2 * c + 2 * c)
        + (c * c + c)
    )
    return norms + scales + convs


def nafnet_params(width: int, enc: list[int], middle: int, dec: list[int]) -> int:
    total = (3 * 3 * 3 * width + width) + (3 * 3 * width * 3 + 3)  # intro and end convs
    c = width
    for n in enc:
        total += n * naf_block_params(c) + (2 * 2 * c * 2 * c + 2 * c)  # blocks, then the 2x2 stride-2 conv
        c *= 2
    total += middle * naf_block_params(c)
    for n in dec:
        total += c * 2 * c  # 1x1 conv to 2c (no bias) before the pixel shuffle to c / 2
        c //= 2
        total += n * naf_block_params(c)
    return total


def test_nafnet_gopro_width32_has_the_published_parameter_count(float32_policy: None) -> None:
    settings = nafnet.NafNetSettings()  # the defaults are the GOPRO width-32 model
    assert (settings.width, settings.enc_blocks, settings.middle_blocks, settings.dec_blocks) == (
        32,
        (1, 1, 1, 28),
        1,
        (1, 1, 1, 1),
    )
    model = nafnet.build(settings)
    assert model.count_params() == nafnet_params(32, [1, 1, 1, 28], 1, [1, 1, 1, 1]) == 17_111_907  # 17.11 M
    assert nafnet.ARCH.stride(settings) == 16 and nafnet.ARCH.input_range == (0.0, 1.0)


@pytest.mark.parametrize(("height", "width"), [(16, 16), (48, 32), (32, 80)])
def test_nafnet_keeps_any_size_divisible_by_its_stride(float32_policy: None, height: int, width: int) -> None:
    model = nafnet.build(SMALL_NAFNET)
    assert nafnet.ARCH.stride(SMALL_NAFNET) == 4
    x = np.random.default_rng(0).uniform(0, 1, (2, height, width, 3)).astype(np.float32)
    assert model(x).shape == x.shape
    assert model.count_params() == nafnet_params(4, [1, 1], 1, [1, 1])


def test_naf_blocks_start_as_the_identity(float32_policy: None) -> None:
    """Both scales start at 0: each block passes its input through until training moves them."""
    model = nafnet.build(SMALL_NAFNET)
    x = np.random.default_rng(1).uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    probe = keras.Model(
        model.input, [model.get_layer("intro").output, model.get_layer("enc1_block1_add2").output]
    )
    before, after = probe(x)
    np.testing.assert_array_equal(before.numpy(), after.numpy())


def test_nearest_upsampling_repeats_pixels_and_its_gradient_compiles_with_xla() -> None:
    """tf.image.resize "nearest" at factor 2 (float32 and a float16 layer); its gradient (each input pixel's
    output gradients summed) compiles under XLA (train.jit_compile), resize's own does not."""
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 5, 7, 3)).astype(np.float32))
    up = layers.UpsampleNearest(2)
    np.testing.assert_array_equal(up(x).numpy(), tf.image.resize(x, [10, 14], method="nearest").numpy())
    half = layers.UpsampleNearest(2, dtype="float16")(tf.cast(x, tf.float16))
    assert half.dtype == tf.float16 and np.array_equal(half.numpy(), up(x).numpy().astype(np.float16))
    weights = tf.constant(np.arange(10 * 14 * 3, dtype=np.float32).reshape(1, 10, 14, 3))

    @tf.function(jit_compile=True)
    def grad(v: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(up(v) * weights)
        return tape.gradient(loss, v)

    want = weights.numpy().reshape(1, 5, 2, 7, 2, 3).sum(axis=(2, 4))
    np.testing.assert_allclose(grad(x[:1]).numpy(), want)


def test_simple_gate_and_pixel_shuffle_values() -> None:
    x = np.arange(2 * 2 * 4, dtype=np.float32).reshape(1, 2, 2, 4)
    np.testing.assert_array_equal(layers.SimpleGate()(x).numpy(), x[..., :2] * x[..., 2:])
    y = layers.PixelShuffle(2)(x).numpy()
    assert y.shape == (1, 4, 4, 1)
    # Each input pixel's 4 channels fill a 2x2 block of the output, row by row.
    np.testing.assert_array_equal(y[0, :2, :2, 0], x[0, 0, 0].reshape(2, 2))


def box_mean_reference(x: np.ndarray, window: int) -> np.ndarray:
    """TLC's local mean by brute force: valid k x k box means, then replicate padding back to the map size."""
    _, h, w, _ = x.shape
    kh, kw = min(h, window), min(w, window)
    oh, ow = h - kh + 1, w - kw + 1
    box = np.stack(
        [np.stack([x[:, i : i + kh, j : j + kw].mean(axis=(1, 2)) for j in range(ow)], 1) for i in range(oh)],
        1,
    )
    rows = np.clip(np.arange(h) - (h - oh) // 2, 0, oh - 1)
    cols = np.clip(np.arange(w) - (w - ow) // 2, 0, ow - 1)
    return box[:, rows][:, :, cols]


@pytest.mark.parametrize(("h", "w", "window"), [(9, 13, 4), (8, 8, 3), (6, 10, 6), (5, 7, 100)])
def test_tlc_box_mean_matches_brute_force(h: int, w: int, window: int) -> None:
    x = np.random.default_rng(2).normal(size=(2, h, w, 3)).astype(np.float32)
    got = layers.box_mean(x, window).numpy()
    np.testing.assert_allclose(got, box_mean_reference(x, window), atol=1e-5)
    if window >= max(h, w):  # a window covering the map is the global mean, as without TLC
        np.testing.assert_allclose(
            got, np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape), atol=1e-5
        )


def test_tlc_changes_only_frames_larger_than_its_window(float32_policy: None) -> None:
    model = nafnet.build(SMALL_NAFNET)
    rng = np.random.default_rng(4)
    model.set_weights([w + rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in model.get_weights()])
    spec = archs.spec_from_meta({"arch": nafnet.ARCH.describe(SMALL_NAFNET, train_size=16)})
    assert spec.tlc_base() == 24
    local = archs.with_tlc(spec, model)
    small = rng.uniform(0, 1, (1, 24, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(local(small).numpy(), model(small).numpy(), atol=1e-5)
    # A frame whose halves differ: the local statistics of each half are not the frame's.
    large = np.concatenate([np.full((1, 64, 48, 3), 0.1), np.full((1, 64, 48, 3), 0.9)], axis=2).astype(
        np.float32
    )
    assert np.abs(local(large).numpy() - model(large).numpy()).max() > 1e-2


@pytest.mark.parametrize("module", ["train.archs.layers", "train.archs.restormer_layers"])
def test_a_layer_module_imported_first_brings_keras_and_every_layer(module: str) -> None:
    """Importing a layer module before anything else imports Keras from inside it; the registration that follows
    (every registering module) must not meet a half-initialized module. It did for train.archs.layers: Restormer's
    layers imported its PACKAGE before layers.py had defined it (ImportError)."""
    code = (
        f"import sys, {module}, keras; "
        "names = keras.saving.get_registered_object; "
        "assert names('gopro_deblur>ReflectionPadding2D') and names('gopro_deblur>ChannelAttention'), 'unregistered'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
