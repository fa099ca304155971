"""Sample grids: a few fixed validation crops shown as blur | deblurred | sharp rows, saved at every version.

The crops are the first few of the validation split (centre crops, file order): the same images at every
version, so the grids show progress rather than different pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.fsio import join

SAMPLES_DIR = "samples"
SAMPLE_COUNT = 4
GAP = 2  # white pixels between tiles


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255] (rounded, clipped)."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def sample_grid(blur: np.ndarray, restored: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """uint8 RGB grid, one row per example: blur | restored | sharp, separated by white gaps.

    Inputs are float [-1, 1] batches of the same shape [n, h, w, 3].
    """
    if not blur.shape == restored.shape == sharp.shape or blur.ndim != 4:
        raise ValueError(
            f"expected three [n, h, w, 3] batches, got {blur.shape}, {restored.shape}, {sharp.shape}"
        )
    n, h, w, _ = blur.shape
    grid = np.full((n * h + (n - 1) * GAP, 3 * w + 2 * GAP, 3), 255, np.uint8)
    for row, images in enumerate(zip(blur, restored, sharp, strict=True)):
        top = row * (h + GAP)
        for col, image in enumerate(images):
            left = col * (w + GAP)
            grid[top : top + h, left : left + w] = to_uint8(image)
    return grid


def sample_path(run_dir: str | Path, step: int) -> str:
    return join(str(run_dir), SAMPLES_DIR, f"step_{step:06d}.png")


def validation_crops(
    shards_dir: str, info: Any, crop_size: int, count: int = SAMPLE_COUNT
) -> tuple[Any, Any]:
    """The first `count` validation (else training) examples as centre crops: float32 [-1, 1] numpy batches."""
    from train.fit.data import make_dataset

    splits = info.meta.get("splits", {})
    split = next((s for s in ("test", "val", "validation") if s in splits and info.examples(s) > 0), "train")
    blur, sharp = next(iter(make_dataset(shards_dir, split, count, crop_size, training=False, info=info)))
    return blur.numpy(), sharp.numpy()
