"""The PatchGAN critic of DeblurGAN's adversarial loss (WGAN, no sigmoid), for any generator architecture.

Three stride-2 4x4 convs, then two stride-1 convs to a map of scores, each judging a 70x70 patch. Instance
normalization, not batch normalization: WGAN-GP's gradient penalty must be per example. Takes images in the
canonical [-1, 1] range, whatever range the generator uses.
"""

from __future__ import annotations

from typing import Any


def build_critic(filters: int = 64, name: str = "critic", dtype: Any = None) -> Any:
    import keras
    from keras import layers

    from train.archs.layers import InstanceNormalization

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
