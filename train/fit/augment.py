"""Paired augmentation: one random crop window and one flip/rotation applied identically to blur and sharp.

Stacking the pair along channels makes "identically" true by construction. Randomness is stateless, keyed on a
per-example seed, so an example's crop depends only on (seed, example index): reproducible under any thread
count, and restored exactly with the tf.data iterator.
"""

from __future__ import annotations

import tensorflow as tf


def to_unit_range(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (the generator's tanh range)."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
    return tf.cast(
        tf.clip_by_value(tf.round((tf.cast(image, tf.float32) + 1.0) * 127.5), 0.0, 255.0), tf.uint8
    )


def paired_augment(
    blur: tf.Tensor, sharp: tf.Tensor, crop_size: int, seed: tf.Tensor, training: bool
) -> tuple[tf.Tensor, tf.Tensor]:
    """Crop both uint8 images to `crop_size` at the same window; when training, random window plus one of the 8
    flips/rotations (stateless `seed`: int shape [2]); else the centre window. Returns float32 in [-1, 1]."""
    pair = tf.concat([blur, sharp], axis=-1)  # [h, w, 6]: every op below moves both images together
    size = [crop_size, crop_size, 6]
    if training:
        crop_seed, flip_seed, rot_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        pair = tf.image.stateless_random_crop(pair, size, seed=crop_seed)
        pair = tf.image.stateless_random_flip_left_right(pair, seed=flip_seed)
        pair = tf.image.rot90(pair, tf.random.stateless_uniform([], rot_seed, 0, 4, dtype=tf.int32))
    else:
        shape = tf.shape(pair)
        top, left = (shape[0] - crop_size) // 2, (shape[1] - crop_size) // 2
        pair = pair[top : top + crop_size, left : left + crop_size]
    pair = tf.ensure_shape(pair, size)
    pair = to_unit_range(pair)
    return pair[..., :3], pair[..., 3:]
