"""Paired random crops: where each crop of a frame goes, and cutting it out.

Offsets are a pure function of (seed, scene, frame, crop index, frame size, crop size), so a re-run, another
machine or another runner cuts the same pixels; the blurred and the sharp frame are cut at the same offset.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that is the same in every process (unlike the salted built-in `hash`)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def crop_offset(
    seed: int, scene: str, frame: str, index: int, height: int, width: int, crop: int
) -> tuple[int, int]:
    """Top-left (y, x) of crop `index` of a `height` x `width` frame; uniform over every valid position."""
    if crop > height or crop > width:
        raise ValueError(f"crop {crop} does not fit a {width}x{height} frame")
    rng = np.random.default_rng([seed, stable_hash(scene), stable_hash(frame), index])
    y = int(rng.integers(0, height - crop + 1))
    x = int(rng.integers(0, width - crop + 1))
    return y, x


def crop_offsets(
    seed: int, scene: str, frame: str, count: int, height: int, width: int, crop: int
) -> list[tuple[int, int]]:
    """Offsets of crops 0..count-1; crop i is the same whatever `count` is (each index has its own stream)."""
    return [crop_offset(seed, scene, frame, i, height, width, crop) for i in range(count)]


def fits(height: int, width: int, crop: int) -> bool:
    """Whether a `crop` x `crop` window fits in a `height` x `width` frame."""
    return 0 < crop <= height and crop <= width


def cut(image: np.ndarray, y: int, x: int, crop: int) -> np.ndarray:
    """The `crop` x `crop` window of `image` at (y, x) (a view; no copy)."""
    if y < 0 or x < 0 or y + crop > image.shape[0] or x + crop > image.shape[1]:
        raise ValueError(f"crop {crop} at ({y}, {x}) leaves a {image.shape[1]}x{image.shape[0]} image")
    return image[y : y + crop, x : x + crop]
