"""Crop offsets are a pure, process-independent function of (seed, scene, frame, index); cuts are exact."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.crops import crop_offset, crop_offsets, cut, fits, stable_hash


def test_stable_hash_is_fixed_across_processes():
    code = "from pipeline.crops import stable_hash; print(stable_hash('GOPR0372_07_00'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout) == stable_hash("GOPR0372_07_00")
    assert stable_hash("a") != stable_hash("b")
    assert 0 <= stable_hash("") < 2**64


def test_offsets_depend_on_seed_scene_frame_and_index_only():
    base = crop_offsets(0, "GOPR0372_07_00", "000047", 8, 720, 1280, 256)
    assert base == crop_offsets(0, "GOPR0372_07_00", "000047", 8, 720, 1280, 256)
    assert len(set(base)) == 8  # 8 distinct windows out of 465 x 1025 positions
    assert crop_offsets(1, "GOPR0372_07_00", "000047", 8, 720, 1280, 256) != base
    assert crop_offsets(0, "GOPR0372_07_01", "000047", 8, 720, 1280, 256) != base
    assert crop_offsets(0, "GOPR0372_07_00", "000048", 8, 720, 1280, 256) != base
    # crop i does not depend on how many crops are cut
    assert crop_offsets(0, "GOPR0372_07_00", "000047", 3, 720, 1280, 256) == base[:3]
    assert crop_offset(0, "GOPR0372_07_00", "000047", 5, 720, 1280, 256) == base[5]


@settings(max_examples=200, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    crop=st.integers(1, 300),
    seed=st.integers(0, 2**32),
    index=st.integers(0, 50),
)
def test_offsets_always_fit(height, width, crop, seed, index):
    if not fits(height, width, crop):
        with pytest.raises(ValueError, match="does not fit"):
            crop_offset(seed, "s", "f", index, height, width, crop)
        return
    y, x = crop_offset(seed, "s", "f", index, height, width, crop)
    assert 0 <= y <= height - crop and 0 <= x <= width - crop


def test_offsets_cover_every_position():
    """Uniform over valid positions: a 6x5 frame with a 4px crop has 3 x 2 positions, all reached."""
    seen = {crop_offset(0, "s", str(f), 0, 6, 5, 4) for f in range(200)}
    assert seen == {(y, x) for y in range(3) for x in range(2)}
    assert crop_offsets(0, "s", "f", 4, 32, 32, 32) == [(0, 0)] * 4  # crop = frame: the only window


def test_cut_is_an_exact_view():
    image = np.arange(6 * 7 * 3, dtype=np.uint8).reshape(6, 7, 3)
    window = cut(image, 2, 3, 3)
    assert window.shape == (3, 3, 3)
    assert np.array_equal(window, image[2:5, 3:6])
    assert np.shares_memory(window, image)
    assert window[0, 0, 0] == image[2, 3, 0] == (2 * 7 + 3) * 3
    with pytest.raises(ValueError, match="leaves"):
        cut(image, 4, 0, 3)
    with pytest.raises(ValueError, match="leaves"):
        cut(image, 0, -1, 3)


def test_fits():
    assert fits(720, 1280, 256) and fits(256, 256, 256)
    assert not fits(255, 1280, 256) and not fits(720, 255, 256) and not fits(0, 0, 0)
