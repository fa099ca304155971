"""Small fully convolutional stand-ins for the DeblurGAN generator, saved as real generator versions in tests.

`identity_generator` returns its input exactly (a 1x1 conv with an identity kernel); `local_generator` is a
two-layer 3x3 conv net (receptive field 5x5, radius 2) with a residual connection, so tiling with any overlap
whose margin is at least 2 pixels must reproduce the untiled output. `random_deblurgan` and `random_nafnet` are
the project's own generators with every weight random, for tests that mean "the real model runs": the untrained
ones are exactly the identity, so a layer that is lost, skipped or loaded with other weights would pass unseen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def identity_generator():
    import keras

    inputs = keras.Input(shape=(None, None, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=True, name="identity")
    outputs = conv(inputs)
    conv.set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3), np.zeros(3, np.float32)])
    return keras.Model(inputs, outputs, name="identity_generator")


def local_generator(seed: int = 0):
    import keras

    inputs = keras.Input(shape=(None, None, 3))
    init = keras.initializers.RandomNormal(stddev=0.2, seed=seed)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", kernel_initializer=init)(inputs)
    x = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer=init)(x)
    outputs = keras.layers.Activation("tanh")(keras.layers.Add()([inputs, x]))
    return keras.Model(inputs, outputs, name="local_generator")


def random_deblurgan(filters: int = 4, blocks: int = 1, seed: int = 0):
    """DeblurGAN generator (no dropout) with random weights everywhere: kernels ~ N(0, 1/fan_in) (the tail's at
    a third of that, so the output is changed but rarely clipped), instance-norm scales ~ U(0.5, 1.5), shifts and
    biases ~ N(0, 0.1)."""
    from train.archs.deblurgan import DeblurGanSettings, build

    model = build(DeblurGanSettings(filters=filters, blocks=blocks, dropout=0.0))
    rng = np.random.default_rng([seed, 11])
    values = []
    for variable in model.weights:
        shape, name = tuple(variable.shape), variable.path
        if len(shape) == 4:
            value = rng.normal(0.0, (1.0 / np.prod(shape[:3])) ** 0.5, shape) / (3 if "tail" in name else 1)
        elif name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        values.append(value.astype(np.float32))
    model.set_weights(values)
    return model


def save_version(run_dir: Path, model, step: int = 100, arch: dict | None = None) -> Path:
    """A generator version of `model`; `arch`: its meta.json entry (Arch.describe), else none (DeblurGAN's
    defaults, as in versions written before meta.json recorded the arch)."""
    from train.run.versions import write_version

    meta = {"step": step, "config_sha256": "test", **({"arch": arch} if arch else {})}
    return Path(write_version(run_dir, model, meta))


def random_nafnet(
    width: int = 4, enc_blocks=(1, 1), middle_blocks: int = 1, dec_blocks=(1, 1), seed: int = 0
):
    """The project's NAFNet with every weight random (the untrained one is the identity: its block scales start
    at 0): kernels ~ N(0, 1/fan_in), block scales ~ N(0, 0.05), layer-norm scales ~ U(0.5, 1.5), shifts and
    biases ~ N(0, 0.1). It changes a photo by about 55 grey levels on average; with block scales ~ N(0, 0.3)
    it would be chaotic (100 levels: noise). Returns (model, settings)."""
    from train.archs.nafnet import NafNetSettings, build

    settings = NafNetSettings(
        width=width, enc_blocks=tuple(enc_blocks), middle_blocks=middle_blocks, dec_blocks=tuple(dec_blocks)
    )
    model = build(settings, dtype="float32")
    rng = np.random.default_rng([seed, 13])
    values = []
    for variable in model.weights:
        shape, name = tuple(variable.shape), variable.path
        if len(shape) == 4:
            fan_in = np.prod(shape[:2]) * (1 if "dwconv" in name else shape[2])
            value = rng.normal(0.0, (1.0 / fan_in) ** 0.5, shape)
        elif name.endswith("scale"):
            value = rng.normal(0.0, 0.05, shape)
        elif name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        values.append(value.astype(np.float32))
    model.set_weights(values)
    return model, settings
