"""The Python API refuses inputs it would otherwise get silently wrong: a float image outside [0, 1] (e.g. 0-255
floats, which used to come back all white), and non-uint8 or non-array batches given to `restore_uint8`."""

from __future__ import annotations

import numpy as np
import pytest
from test_deblurrer import loaded, smooth_image
from tiny_generators import identity_generator

from train.inference.deblurrer import Deblurrer


@pytest.fixture(scope="module")
def deblur() -> Deblurrer:
    return Deblurrer(loaded(identity_generator()))


def test_a_float_image_in_0_255_is_refused_naming_the_range(deblur: Deblurrer) -> None:
    image = smooth_image(24, 32, seed=1).astype(np.float32)  # 0-255 values as floats
    lo, hi = image.min(), image.max()
    with pytest.raises(ValueError, match=rf"float image values span \[{lo:g}, {hi:g}\].*\[0, 1\]"):
        deblur(image)
    with pytest.raises(ValueError, match=r"span \[-1, 1\]"):
        deblur(np.linspace(-1, 1, 24 * 32 * 3, dtype=np.float64).reshape(24, 32, 3))
    with pytest.raises(ValueError, match="NaN"):
        deblur(np.full((8, 8, 3), np.nan, np.float32))


def test_floats_in_0_1_and_a_rounding_hair_outside_are_accepted(deblur: Deblurrer) -> None:
    image = smooth_image(24, 32, seed=2).astype(np.float32) / 255
    np.testing.assert_allclose(deblur(image), image, atol=1e-6)
    nudged = image.copy()
    nudged[0, 0] = [-1e-7, 1 + 1e-7, 0.5]  # what float arithmetic leaves behind: clipped, not refused
    out = deblur(nudged)
    assert out.dtype == np.float32 and out[0, 0, 0] == 0.0 and out[0, 0, 1] == 1.0


def test_restore_uint8_takes_a_list_of_frames_and_refuses_other_sample_types(deblur: Deblurrer) -> None:
    frames = [smooth_image(16, 24, seed=i) for i in range(3)]
    np.testing.assert_array_equal(deblur.restore_uint8(frames), np.stack(frames))  # a list: stacked, as said
    with pytest.raises(TypeError, match=r"restore_uint8 takes uint8 frames, got float32"):
        deblur.restore_uint8(np.stack(frames).astype(np.float32))
    with pytest.raises(ValueError, match=r"\[n, height, width, 3\].*\(16, 24, 3\)"):
        deblur.restore_uint8(frames[0])
    with pytest.raises(ValueError, match="same size"):
        deblur.restore_uint8([frames[0], smooth_image(8, 8, seed=4)])
