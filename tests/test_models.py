"""train.models: shapes on odd sizes, custom layers' values, precision, and save/load of a generator version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from train import models
from train.versions import load_generator, write_version

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def float32_policy() -> None:
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(("height", "width"), [(12, 20), (36, 28), (8, 8), (44, 100)])
def test_generator_keeps_any_size_divisible_by_stride(float32_policy: None, height: int, width: int) -> None:
    g = models.build_generator(filters=4, blocks=1, dropout=0.0)
    x = np.random.default_rng(0).uniform(-1, 1, (2, height, width, 3)).astype(np.float32)
    y = g(x, training=False).numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= -1.0 and y.max() <= 1.0
    assert models.GENERATOR_STRIDE == 4 and models.GENERATOR_MIN_SIZE == 8


@pytest.mark.parametrize(("height", "width", "out"), [(32, 32, (4, 4)), (20, 36, (3, 5)), (12, 28, (2, 4))])
def test_critic_score_map_is_one_eighth_rounded_up(
    float32_policy: None, height: int, width: int, out: tuple
) -> None:
    c = models.build_critic(filters=4)
    score = c(np.zeros((3, height, width, 3), np.float32)).numpy()
    assert score.shape == (3, *out, 1)


def test_reflection_padding_matches_numpy_reflect() -> None:
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    got = models.ReflectionPadding2D(2)(x).numpy()
    assert np.array_equal(got, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))


def test_instance_norm_normalizes_each_example_and_channel() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(3.0, 5.0, (2, 6, 7, 3)) * np.array([1, 10, 100])).astype(np.float32)
    y = models.InstanceNormalization()(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1.0, atol=1e-3)
    expect = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expect, atol=1e-4)


def test_global_skip_adds_and_clips() -> None:
    image = np.array([[[[0.5, -0.9, 0.0]]]], np.float32)
    residual = np.array([[[[0.7, -0.5, 0.25]]]], np.float32)
    got = models.GlobalSkip()([image, residual]).numpy()
    assert np.allclose(got, [[[[1.0, -1.0, 0.25]]]])


def test_mixed_precision_keeps_the_head_float32() -> None:
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        g = models.build_generator(filters=4, blocks=1)
        c = models.build_critic(filters=4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert g.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert g.get_layer("tail_conv").compute_dtype == "float32"
    assert g.output.dtype == "float32" and c.output.dtype == "float32"
    copy = models.copy_generator(g, 4, 1, 0.5)
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
}


@pytest.mark.parametrize("order", sorted(LOAD_IN_FRESH_PROCESS))
def test_version_saves_and_loads_with_keras_load_model(
    float32_policy: None, tmp_path: Path, order: str
) -> None:
    g = models.build_generator(filters=4, blocks=2, dropout=0.5)
    rng = np.random.default_rng(3)
    # Random weights everywhere: an untrained generator is the identity (zero last conv), which would hide a
    # version that saved no weights at all.
    g.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in g.get_weights()])
    x = rng.uniform(-1, 1, (1, 12, 20, 3)).astype(np.float32)
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
    g = models.build_generator(filters=8, blocks=1, dropout=0.0)
    x = tf.random.stateless_uniform((1, 16, 16, 3), [0, 1], -1.0, 1.0)
    assert np.array_equal(g(x).numpy(), x.numpy())
