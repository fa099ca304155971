"""train.fit.samples: the blur | restored | sharp grid, pixel by pixel, and its atomic PNG write."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.fsio import write_png
from train.fit.samples import GAP, sample_grid, sample_path, to_uint8


def test_grid_layout_is_rows_of_blur_restored_sharp() -> None:
    n, h, w = 2, 3, 4
    blur, restored, sharp = (np.full((n, h, w, 3), v, np.float32) for v in (-1.0, 0.0, 1.0))
    sharp[1] = 0.5
    grid = sample_grid(blur, restored, sharp)
    assert grid.shape == (n * h + GAP, 3 * w + 2 * GAP, 3) and grid.dtype == np.uint8
    assert (grid[:h, :w] == 0).all() and (grid[:h, w + GAP : 2 * w + GAP] == 128).all()
    assert (grid[:h, -w:] == 255).all() and (grid[h + GAP :, -w:] == 191).all()
    assert (grid[h : h + GAP] == 255).all()  # white gap between rows
    with pytest.raises(ValueError, match="three"):
        sample_grid(blur, restored[:1], sharp)


def test_to_uint8_rounds_and_clips() -> None:
    assert to_uint8(np.array([-2.0, -1.0, 0.0, 1.0, 3.0])).tolist() == [0, 0, 128, 255, 255]


def test_png_is_written_atomically_and_reads_back(tmp_path: Path) -> None:
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = Path(sample_path(tmp_path, 42))
    write_png(path, rgb)
    assert path.name == "step_000042.png" and [p.name for p in path.parent.iterdir()] == [path.name]
    assert np.array_equal(cv2.imread(str(path))[:, :, ::-1], rgb)
