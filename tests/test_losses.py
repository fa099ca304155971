"""train.fit.losses: VGG preprocessing and weights options, WGAN-GP values on analytic critics, generator terms."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.errors import ConfigError, DataError
from train.config import LossConfig
from train.fit import losses

W = np.array([0.3, -0.6, 0.2], np.float32)


def linear_critic(bias: float = 0.1) -> keras.Model:
    """D(x) = per-pixel w.x + b: its input gradient is known in closed form."""
    image = keras.Input((None, None, 3))
    score = keras.layers.Conv2D(
        1,
        1,
        kernel_initializer=keras.initializers.Constant(W.reshape(1, 1, 3, 1)),
        bias_initializer=keras.initializers.Constant(bias),
    )(image)
    return keras.Model(image, score)


def test_vgg_preprocess_is_caffe_bgr_minus_imagenet_mean() -> None:
    red = np.zeros((1, 2, 2, 3), np.float32) - 1.0
    red[..., 0] = 1.0  # pure red in [-1, 1]
    got = losses.vgg_preprocess(tf.constant(red)).numpy()
    np.testing.assert_allclose(got[0, 0, 0], [0 - 103.939, 0 - 116.779, 255 - 123.68], atol=1e-3)


def test_random_features_are_seeded_frozen_and_quarter_size() -> None:
    a = losses.build_feature_extractor("none", seed=3)
    b = losses.build_feature_extractor("none", seed=3)
    c = losses.build_feature_extractor("none", seed=4)
    assert not a.trainable and not a.trainable_weights
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    out = a(losses.vgg_preprocess(tf.zeros((2, 20, 28, 3))))
    assert out.shape == (2, 5, 7, 256) and a.layers[-1].name == "block3_conv3"


def test_local_h5_weights_are_loaded(tmp_path: Path) -> None:
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    rng = np.random.default_rng(9)
    vgg.set_weights([rng.normal(0, 0.01, w.shape).astype(np.float32) for w in vgg.get_weights()])
    path = tmp_path / "vgg19_notop.weights.h5"
    vgg.save_weights(path)
    features = losses.build_feature_extractor(str(path))
    assert np.array_equal(features.get_layer("block1_conv1").get_weights()[0], vgg.get_weights()[0])


def test_missing_weights_path_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.loss\.perceptual_weights: .*nope\.h5"):
        losses.build_feature_extractor(str(tmp_path / "nope.h5"))


def test_failed_imagenet_download_names_the_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network here: simulate keras' download failure and check the message tells the user what to do."""
    from keras.src.utils import file_utils

    def offline(*args: object, **kwargs: object) -> str:
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/...: None -- name resolution failed"
        )

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(DataError) as info:
        losses.build_feature_extractor("imagenet")
    msg = str(info.value)
    assert (
        "train.loss.perceptual_weights=imagenet" in msg and "perceptual_weights=none" in msg and ".h5" in msg
    )


def test_critic_loss_matches_closed_form() -> None:
    critic = linear_critic()
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (3, 4, 6, 3)).astype(np.float32)
    fake = rng.uniform(-1, 1, (3, 4, 6, 3)).astype(np.float32)
    eps = np.array([0.1, 0.5, 0.9], np.float32).reshape(3, 1, 1, 1)
    parts = losses.critic_loss(critic, tf.constant(real), tf.constant(fake), tf.constant(eps), 10.0)
    score = lambda x: (x @ W).mean(axis=(1, 2)) + 0.1  # noqa: E731
    np.testing.assert_allclose(parts["wasserstein"].numpy(), score(fake) - score(real), rtol=1e-5)
    # d mean(w.x) / dx = w / (h*w) at every pixel: norm = |w| / sqrt(h*w), the same for every example.
    gp = (np.linalg.norm(W) / np.sqrt(4 * 6) - 1.0) ** 2
    np.testing.assert_allclose(parts["gp"].numpy(), [gp] * 3, rtol=1e-5)
    np.testing.assert_allclose(parts["critic"].numpy(), score(fake) - score(real) + 10.0 * gp, rtol=1e-5)


def test_drift_term_is_the_squared_real_score_and_only_it_moves_the_score_level() -> None:
    """`drift * D(real)^2` (progressive GAN) is added per example; the Wasserstein and penalty terms are blind to
    a constant added to every score (the bias of a linear critic), so without it nothing holds the level."""
    critic = linear_critic(bias=0.7)
    rng = np.random.default_rng(2)
    real = rng.uniform(-1, 1, (3, 4, 6, 3)).astype(np.float32)
    fake = rng.uniform(-1, 1, (3, 4, 6, 3)).astype(np.float32)
    eps = np.array([0.1, 0.5, 0.9], np.float32).reshape(3, 1, 1, 1)
    d_real = (real @ W).mean(axis=(1, 2)) + 0.7
    plain = losses.critic_loss(critic, tf.constant(real), tf.constant(fake), tf.constant(eps), 10.0)
    anchored = losses.critic_loss(critic, tf.constant(real), tf.constant(fake), tf.constant(eps), 10.0, 0.01)
    np.testing.assert_allclose(anchored["drift"].numpy(), d_real**2, rtol=1e-5)
    np.testing.assert_allclose(
        anchored["critic"].numpy(), plain["critic"].numpy() + 0.01 * d_real**2, rtol=1e-5, atol=1e-6
    )
    bias = critic.layers[-1].bias
    for weight, want in ((0.0, 0.0), (0.01, 2 * 0.01 * d_real.mean())):
        with tf.GradientTape() as tape:
            parts = losses.critic_loss(
                critic, tf.constant(real), tf.constant(fake), tf.constant(eps), 10.0, weight
            )
            loss = tf.reduce_mean(parts["critic"])
        assert float(tape.gradient(loss, bias.value)[0]) == pytest.approx(want, abs=1e-7)


def test_gradient_penalty_is_taken_at_the_interpolates() -> None:
    """A quadratic critic, D(x) = mean over pixels of sum_c a_c x_c^2, has input gradient 2 a x / (h w), which
    differs from point to point: the penalty must match it at real + eps (fake - real), per example."""
    a = np.array([0.5, -1.5, 2.0], np.float32)
    image = keras.Input((None, None, 3))
    squared = keras.layers.Lambda(lambda x: x * x)(image)
    score = keras.layers.Conv2D(
        1,
        1,
        kernel_initializer=keras.initializers.Constant(a.reshape(1, 1, 3, 1)),
        bias_initializer="zeros",
    )(squared)
    critic = keras.Model(image, score)
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (3, 4, 5, 3)).astype(np.float32)
    fake = rng.uniform(-1, 1, (3, 4, 5, 3)).astype(np.float32)
    eps = np.array([0.0, 0.25, 1.0], np.float32).reshape(3, 1, 1, 1)
    got = losses.gradient_penalty(critic, tf.constant(real), tf.constant(fake), tf.constant(eps)).numpy()
    mixed = real + eps * (fake - real)
    grad = 2 * a * mixed / (4 * 5)
    want = (np.sqrt((grad**2).sum(axis=(1, 2, 3))) - 1.0) ** 2
    np.testing.assert_allclose(got, want, rtol=1e-5)
    at_real = (np.sqrt(((2 * a * real / 20) ** 2).sum(axis=(1, 2, 3))) - 1.0) ** 2
    assert abs(got[2] - at_real[2]) > 1e-3 and got[0] == pytest.approx(at_real[0], rel=1e-5)


def test_generator_loss_terms_and_weights() -> None:
    critic = linear_critic(bias=0.0)
    features = losses.build_feature_extractor("none", seed=0)
    sharp = tf.constant(np.full((2, 8, 8, 3), 0.5, np.float32))
    restored = tf.constant(np.full((2, 8, 8, 3), 0.25, np.float32))
    sharp_features = features(losses.vgg_preprocess(sharp))
    cfg = LossConfig(perceptual=2.0, adversarial=3.0, pixel=4.0, psnr=0.5, perceptual_weights="none")
    parts = losses.restoration_loss(features, sharp, sharp_features, restored, cfg)
    np.testing.assert_allclose(parts["pixel"].numpy(), [0.25, 0.25], rtol=1e-6)
    # [-1, 1] error 0.25 is 0.125 on [0, 1] images: PSNR 20 log10(1 / 0.125) = 18.06 dB, the loss its negative.
    np.testing.assert_allclose(parts["psnr"].numpy(), [-20 * np.log10(8.0)] * 2, rtol=1e-5)
    np.testing.assert_allclose(
        losses.adversarial_loss(critic, restored).numpy(), [-0.25 * W.sum()] * 2, rtol=1e-5
    )
    assert np.all(parts["perceptual"].numpy() > 0)
    total = 2.0 * parts["perceptual"] + 4.0 * parts["pixel"] + 0.5 * parts["psnr"]
    np.testing.assert_allclose(parts["generator"].numpy(), total.numpy(), rtol=1e-6)
    same = losses.restoration_loss(features, sharp, sharp_features, sharp, cfg)
    np.testing.assert_allclose(same["perceptual"].numpy(), [0.0, 0.0], atol=1e-6)
    # Identical images: MSE 0, the loss bottoms out at 10 log10(1e-8) = -80 dB instead of -inf.
    np.testing.assert_allclose(same["psnr"].numpy(), [-80.0, -80.0], rtol=1e-5)
    off = losses.restoration_loss(None, sharp, None, restored, LossConfig(perceptual=0.0, pixel=1.0))
    np.testing.assert_allclose(off["perceptual"].numpy(), [0.0, 0.0])
    np.testing.assert_allclose(off["psnr"].numpy(), [0.0, 0.0])


def test_global_batch_averaging_is_replica_count_proof() -> None:
    """Two replicas each summing their half and dividing by the GLOBAL batch add up to the full-batch mean."""
    per_example = tf.constant([1.0, 2.0, 3.0, 6.0])
    halves = [tf.nn.compute_average_loss(per_example[i : i + 2], global_batch_size=4) for i in (0, 2)]
    assert float(halves[0] + halves[1]) == pytest.approx(float(tf.reduce_mean(per_example)))
