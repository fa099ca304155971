"""The GOPRO blur recipe as pure functions on uint8 frame stacks.

A blurred frame is the average of N consecutive sharp high-frame-rate sub-frames; the sharp target is the middle
one. `blur` averages the stored (gamma-encoded) values, `blur_gamma` averages in linear light, which is closer to
what a sensor integrates. Frames are `[N, H, W]` or `[N, H, W, C]` uint8; results are uint8, rounded half up.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_GAMMA = 2.2


def _check_stack(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim not in (3, 4) or frames.shape[0] < 1:
        raise ValueError(f"frames must be [N, H, W] or [N, H, W, C] with N >= 1, got shape {frames.shape}")
    return frames


def _round_to_uint8(values: np.ndarray) -> np.ndarray:
    """Round half up and clip to 0..255 (np.rint would round half to even: 0.5 -> 0, 2.5 -> 2)."""
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def mean_frame(frames: np.ndarray) -> np.ndarray:
    """`blur`: the mean of the stored values, exact in integers, rounded half up."""
    frames = _check_stack(frames)
    n = frames.shape[0]
    total = frames.sum(axis=0, dtype=np.int64)
    # round(total / n) half up == floor((2 * total + n) / (2 * n)), exactly, without floating point.
    return ((2 * total + n) // (2 * n)).astype(np.uint8)


def linear_lut(gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """Linear-light value (0..1, float64) of each of the 256 stored levels: (x / 255) ** gamma."""
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return (np.arange(256, dtype=np.float64) / 255.0) ** gamma


def encode_linear(linear: np.ndarray, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """Back from linear light (0..1) to stored uint8 levels: 255 * x ** (1 / gamma), rounded half up."""
    return _round_to_uint8(255.0 * np.clip(linear, 0.0, 1.0) ** (1.0 / gamma))


def gamma_mean_frame(frames: np.ndarray, gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """`blur_gamma`: decode to linear light, average, encode again."""
    frames = _check_stack(frames)
    return accumulate_gamma_mean(frames, gamma)


def accumulate_gamma_mean(frames: Iterable[np.ndarray], gamma: float = DEFAULT_GAMMA) -> np.ndarray:
    """Linear-light mean of an iterable of equally shaped uint8 frames, holding one float64 frame at a time."""
    lut = linear_lut(gamma)
    total: np.ndarray | None = None
    n = 0
    for frame in frames:
        linear = lut[frame]
        if total is None:
            total = linear
        elif linear.shape != total.shape:
            raise ValueError(f"frame {n} has shape {linear.shape}, expected {total.shape}")
        else:
            total += linear
        n += 1
    if total is None:
        raise ValueError("need at least one frame")
    return encode_linear(total / n, gamma)


def middle_index(n: int) -> int:
    """Index of the sharp target among n sub-frames: the middle one (the later middle when n is even)."""
    if n < 1:
        raise ValueError(f"need at least one sub-frame, got {n}")
    return n // 2


def middle_frame(frames: np.ndarray) -> np.ndarray:
    """`sharp`: the middle sub-frame, unchanged."""
    frames = _check_stack(frames)
    return frames[middle_index(frames.shape[0])].copy()


def blur_triple(
    frames: np.ndarray, gamma: float = DEFAULT_GAMMA
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three GOPRO images of one window: (blur, blur_gamma, sharp)."""
    return mean_frame(frames), gamma_mean_frame(frames, gamma), middle_frame(frames)
