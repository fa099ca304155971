"""Losses: VGG19 perceptual, L1, PSNR, WGAN-GP critic (with an optional drift term), and the weighted generator loss.

Every loss here returns per-example values; callers reduce with `tf.nn.compute_average_loss` (sum / GLOBAL batch)
so the gradients are the same on 1 or N replicas. A plain `reduce_mean` on each replica would scale them by the
replica count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from pipeline.errors import ConfigError, DataError

PERCEPTUAL_LAYER = "block3_conv3"
CAFFE_BGR_MEAN = (
    103.939,
    116.779,
    123.68,
)  # ImageNet means used by keras.applications.vgg19.preprocess_input
WEIGHTS_KEY = "train.loss.perceptual_weights"


def _seeded_init(model: keras.Model, seed: int) -> None:
    """Deterministic He-normal kernels and zero biases: identical features in every process and worker."""
    rng = np.random.default_rng([seed, 19])
    values = []
    for w in model.get_weights():
        if w.ndim == 4:
            fan_in = w.shape[0] * w.shape[1] * w.shape[2]
            values.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), size=w.shape).astype(w.dtype))
        else:
            values.append(np.zeros_like(w))
    model.set_weights(values)


def build_feature_extractor(weights: str, seed: int = 0) -> keras.Model:
    """VGG19 up to block3_conv3, frozen. `weights`: `imagenet` (downloaded), `none` (seeded random), or an .h5 path."""
    if weights == "none":
        source = None
    elif weights == "imagenet":
        source = "imagenet"
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"{WEIGHTS_KEY}: {weights!r} is not a file (use imagenet, none, or a local VGG19 no-top .h5 path)"
            )
        source = str(path)
    try:
        vgg = keras.applications.VGG19(include_top=False, weights=source, input_shape=(None, None, 3))
    except (ValueError, OSError) as exc:
        if source == "imagenet":
            raise _download_error(exc) from None
        raise DataError(f"{WEIGHTS_KEY}: cannot load VGG19 weights from {weights!r} ({exc})") from None
    except Exception as exc:  # keras.utils.get_file raises a bare Exception on URL/HTTP failures
        if source != "imagenet":
            raise
        raise _download_error(exc) from None
    features = keras.Model(vgg.input, vgg.get_layer(PERCEPTUAL_LAYER).output, name="vgg19_block3_conv3")
    if source is None:
        _seeded_init(features, seed)
    features.trainable = False
    return features


def _download_error(exc: BaseException) -> DataError:
    reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return DataError(
        f"{WEIGHTS_KEY}=imagenet: could not download the VGG19 ImageNet weights ({reason}); "
        f"use --set {WEIGHTS_KEY}=none (random features, offline) or a local .h5 path"
    )


def vgg_preprocess(images: tf.Tensor) -> tf.Tensor:
    """[-1, 1] RGB -> [0, 255] caffe-style BGR with the ImageNet mean removed (what VGG19 was trained on)."""
    pixels = (tf.cast(images, tf.float32) + 1.0) * 127.5
    return pixels[..., ::-1] - tf.constant(CAFFE_BGR_MEAN, tf.float32)


def perceptual_loss(features: keras.Model, sharp_features: tf.Tensor, restored: tf.Tensor) -> tf.Tensor:
    """Per-example MSE between VGG features of the sharp image (precomputed) and of the restored one."""
    fake = tf.cast(features(vgg_preprocess(restored), training=False), tf.float32)
    return tf.reduce_mean(tf.square(tf.cast(sharp_features, tf.float32) - fake), axis=[1, 2, 3])


def critic_scores(score_map: tf.Tensor) -> tf.Tensor:
    """One Wasserstein score per example: the mean of the PatchGAN map."""
    return tf.reduce_mean(tf.cast(score_map, tf.float32), axis=[1, 2, 3])


def gradient_penalty(critic: keras.Model, real: tf.Tensor, fake: tf.Tensor, epsilon: tf.Tensor) -> tf.Tensor:
    """Per-example (||grad_x critic(x)|| - 1)^2 at x on the line between real and fake (WGAN-GP)."""
    mixed = real + epsilon * (fake - real)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(mixed)
        score = tf.reduce_sum(critic_scores(critic(mixed, training=True)))
    grads = tf.cast(tape.gradient(score, mixed), tf.float32)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.square(norm - 1.0)


def critic_loss(
    critic: keras.Model,
    real: tf.Tensor,
    fake: tf.Tensor,
    epsilon: tf.Tensor,
    penalty_weight: float,
    drift_weight: float = 0.0,
) -> dict[str, tf.Tensor]:
    """Per-example WGAN-GP critic loss `D(fake) - D(real) + w * GP + drift * D(real)^2`, with its parts.

    The Wasserstein and penalty terms do not change when a constant is added to every score, so nothing holds the
    scores' level: the drift term (progressive GAN's, epsilon 0.001 there) anchors it near 0."""
    batch = tf.shape(real)[0]
    scores = critic_scores(critic(tf.concat([real, fake], axis=0), training=True))  # one pass over both
    wasserstein = scores[batch:] - scores[:batch]
    penalty = (
        gradient_penalty(critic, real, fake, epsilon) if penalty_weight > 0 else tf.zeros_like(wasserstein)
    )
    drift = tf.square(scores[:batch])
    total = wasserstein + penalty_weight * penalty + (drift_weight * drift if drift_weight > 0 else 0.0)
    return {"critic": total, "wasserstein": wasserstein, "gp": penalty, "drift": drift}


PSNR_SCALE = 10.0 / float(np.log(10.0))


def psnr_loss(sharp: tf.Tensor, restored: tf.Tensor) -> tf.Tensor:
    """Per-example `(10 / ln 10) * log(MSE + 1e-8)`, MSE of [0, 1] images: minus the PSNR in dB (NAFNet's loss).

    Inputs are in the canonical [-1, 1] range, whose squared errors are 4x those of [0, 1] images."""
    diff = tf.cast(restored, tf.float32) - tf.cast(sharp, tf.float32)
    mse01 = tf.reduce_mean(tf.square(diff), axis=[1, 2, 3]) / 4.0
    return PSNR_SCALE * tf.math.log(mse01 + 1e-8)


def restoration_loss(
    features: keras.Model | None,
    sharp: tf.Tensor,
    sharp_features: tf.Tensor | None,
    restored: tf.Tensor,
    weights: Any,
) -> dict[str, tf.Tensor]:
    """Per-example `perceptual * L_perc + pixel * L1 + psnr * L_psnr`, with its parts for logging.

    `weights` is the `train.loss` config section; a term with weight 0 is not computed at all (reported as 0).
    Images are in the canonical [-1, 1] range."""
    zeros = tf.zeros([tf.shape(restored)[0]], tf.float32)
    perceptual = (
        perceptual_loss(features, sharp_features, restored)
        if weights.perceptual > 0 and features is not None
        else zeros
    )
    pixel = (
        tf.reduce_mean(tf.abs(tf.cast(sharp, tf.float32) - tf.cast(restored, tf.float32)), axis=[1, 2, 3])
        if weights.pixel > 0
        else zeros
    )
    psnr = psnr_loss(sharp, restored) if weights.psnr > 0 else zeros
    total = weights.perceptual * perceptual + weights.pixel * pixel + weights.psnr * psnr
    return {"generator": total, "perceptual": perceptual, "pixel": pixel, "psnr": psnr}


def adversarial_loss(critic: keras.Model, restored: tf.Tensor) -> tf.Tensor:
    """Per-example `-D(G(x))`: the generator's WGAN loss."""
    return -critic_scores(critic(restored, training=True))
