"""Small fully convolutional stand-ins for the DeblurGAN generator, saved as real generator versions in tests.

`identity_generator` returns its input exactly (a 1x1 conv with an identity kernel); `local_generator` is a
two-layer 3x3 conv net (receptive field 5x5, radius 2) with a residual connection, so tiling with any overlap
whose margin is at least 2 pixels must reproduce the untiled output.
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


def save_version(run_dir: Path, model, step: int = 100) -> Path:
    from train.versions import write_version

    return Path(write_version(run_dir, model, {"step": step, "config_sha256": "test"}))
