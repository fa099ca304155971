"""The blur recipe on tiny arrays: exact mean with half-up rounding, linear-light mean, middle frame."""

import numpy as np
import pytest

from pipeline.blur import (
    accumulate_gamma_mean,
    blur_triple,
    encode_linear,
    gamma_mean_frame,
    linear_lut,
    mean_frame,
    middle_frame,
    middle_index,
)


def stack(*values, shape=(2, 3)):
    return np.stack([np.full(shape, v, dtype=np.uint8) for v in values])


def test_mean_is_exact_and_rounds_half_up():
    assert mean_frame(stack(0, 1))[0, 0] == 1  # 0.5 -> 1 (np.rint would give 0)
    assert mean_frame(stack(2, 3))[0, 0] == 3  # 2.5 -> 3 (np.rint would give 2)
    assert mean_frame(stack(0, 0, 1))[0, 0] == 0  # 0.333 -> 0
    assert mean_frame(stack(0, 1, 1))[0, 0] == 1  # 0.667 -> 1
    assert mean_frame(stack(255, 255, 255, 255, 255, 255, 255))[0, 0] == 255  # no uint8 overflow
    assert mean_frame(stack(10, 20, 40))[0, 0] == 23  # 70 / 3 = 23.33


def test_mean_keeps_shape_and_dtype_per_pixel():
    frames = np.array([[[0, 100], [200, 255]], [[10, 101], [0, 255]], [[20, 102], [100, 0]]], dtype=np.uint8)
    out = mean_frame(frames)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[10, 101], [100, 170]])


def test_gamma_mean_of_equal_frames_is_identity():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    frames = np.stack([levels] * 9)
    np.testing.assert_array_equal(gamma_mean_frame(frames), levels)


def test_gamma_mean_black_white_is_brighter_than_plain_mean():
    frames = stack(0, 255)
    # Linear light: mean 0.5 -> 255 * 0.5 ** (1 / 2.2) = 186.08 -> 186; plain mean gives 128.
    assert gamma_mean_frame(frames)[0, 0] == 186
    assert mean_frame(frames)[0, 0] == 128
    # gamma 1 is the plain mean.
    assert gamma_mean_frame(frames, gamma=1.0)[0, 0] == 128


def test_gamma_mean_matches_formula():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(7, 4, 5, 3), dtype=np.uint8)
    expected = np.floor(255 * ((frames / 255.0) ** 2.2).mean(axis=0) ** (1 / 2.2) + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(gamma_mean_frame(frames, 2.2), expected)
    np.testing.assert_array_equal(accumulate_gamma_mean(iter(frames), 2.2), expected)


def test_lut_and_encode_round_trip_every_level():
    lut = linear_lut(2.2)
    assert lut[0] == 0.0 and lut[255] == 1.0
    np.testing.assert_array_equal(encode_linear(lut, 2.2), np.arange(256))


def test_middle_frame():
    assert [middle_index(n) for n in (1, 7, 8, 13)] == [0, 3, 4, 6]
    frames = stack(*range(0, 70, 10))
    assert middle_frame(frames)[0, 0] == 30
    blur, blur_gamma, sharp = blur_triple(frames)
    assert (blur[0, 0], sharp[0, 0]) == (30, 30)
    assert blur_gamma[0, 0] > blur[0, 0]  # linear light weighs the bright frames more


@pytest.mark.parametrize(
    "bad", [np.zeros((3, 2, 2), np.float32), np.zeros((2, 2), np.uint8), np.zeros((0, 2, 2), np.uint8)]
)
def test_rejects_bad_stacks(bad):
    with pytest.raises(ValueError):
        mean_frame(bad)


def test_accumulate_rejects_mismatched_frames():
    with pytest.raises(ValueError, match="shape"):
        accumulate_gamma_mean([np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8)])
