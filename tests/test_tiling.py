"""train.inference.tiling: tile origins, blend weights, cores that partition the frame, the blender."""

from __future__ import annotations

import numpy as np
import pytest

from train.inference import tiling


def test_tile_starts_cover_every_pixel_on_stride() -> None:
    for length in (1100, 700, 257 * 4, 2160, 3840):
        starts = tiling.tile_starts(length, 256, 32, 4)
        assert starts[0] == 0 and starts[-1] == length - 256
        assert all(s % 4 == 0 for s in starts) and starts == sorted(set(starts))
        assert all(b - a <= 256 - 32 for a, b in zip(starts, starts[1:], strict=False))
    assert tiling.tile_starts(200, 256, 32, 4) == [0]
    assert tiling.tile_starts(1100, 256, 32, 4) == [0, 224, 448, 672, 844]


def test_blend_ramp_margin_and_complementary_weights() -> None:
    w = tiling.blend_ramp(64, True, True, 32)
    assert w[:8].max() == 0 and w[-8:].max() == 0  # margin: a quarter of the overlap
    assert w[24:40].min() == 1.0
    np.testing.assert_allclose(w[8:24], (np.arange(16) + 0.5) / 16)
    right, left = tiling.blend_ramp(64, False, True, 32), tiling.blend_ramp(64, True, False, 32)
    np.testing.assert_allclose(right[32:] + left[:32], 1.0)  # two tiles overlapping by `overlap` sum to 1
    np.testing.assert_array_equal(tiling.blend_ramp(10, False, False, 32), np.ones(10))


def test_padded_size_and_reflection() -> None:
    assert [tiling.padded_size(n, 16) for n in (1, 31, 32, 33, 100)] == [32, 32, 32, 48, 112]
    np.testing.assert_array_equal(tiling.reflect_indices(4, 7), [0, 1, 2, 3, 2, 1, 0])
    np.testing.assert_array_equal(tiling.reflect_indices(1, 3), [0, 0, 0])


@pytest.mark.parametrize(
    ("h", "w", "tile", "stride"), [(700, 1100, 256, 4), (333, 517, 128, 16), (64, 64, 2048, 4)]
)
def test_tile_cores_partition_the_padded_frame_on_stride_seams(
    h: int, w: int, tile: int, stride: int
) -> None:
    plan = tiling.plan_tiles(h, w, stride, tile)
    owners = np.zeros((plan.padded_h, plan.padded_w), np.int32)
    for t in plan.tiles:
        y0, y1, x0, x1 = t.core
        assert 0 <= y0 < y1 <= t.h and 0 <= x0 < x1 <= t.w
        assert all(v % stride == 0 for v in (t.y + y0, t.y + y1, t.x + x0, t.x + x1))
        owners[t.y + y0 : t.y + y1, t.x + x0 : t.x + x1] += 1
        assert t.y % stride == 0 and t.x % stride == 0 and t.weight.shape == (t.h, t.w)
    assert (owners == 1).all()  # every padded pixel belongs to exactly one core
    assert plan.whole == (len(plan.tiles) == 1)


def test_blender_reassembles_a_frame_from_its_tiles() -> None:
    frame = np.random.default_rng(0).uniform(0, 1, (333, 517, 3)).astype(np.float32)
    plan = tiling.plan_tiles(333, 517, 4, 128)
    blender = tiling.Blender(plan, 3)
    for t in plan.tiles:
        blender.add(t, tiling.tile_input(frame, t))
    np.testing.assert_allclose(blender.result(), frame, atol=1e-6)
