"""train.inference.tiling: tile origins, blend weights, cores that partition the frame, the blender."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import UsageError
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
    w = tiling.blend_ramp(64, True, True, 8, 16)
    assert w[:8].max() == 0 and w[-8:].max() == 0  # the margin: a tile's border is never used
    assert w[24:40].min() == 1.0
    np.testing.assert_allclose(w[8:24], (np.arange(16) + 0.5) / 16)
    right, left = tiling.blend_ramp(64, False, True, 8, 16), tiling.blend_ramp(64, True, False, 8, 16)
    np.testing.assert_allclose(right[32:] + left[:32], 1.0)  # two tiles overlapping by 2 * 8 + 16 sum to 1
    np.testing.assert_array_equal(tiling.blend_ramp(10, False, False, 8, 16), np.ones(10))


def test_overlap_and_smallest_tile_follow_the_receptive_field() -> None:
    assert (
        tiling.seam_margin(90, 4) == 92 and tiling.seam_margin(26, 4) == 28 and tiling.seam_margin(0, 16) == 0
    )
    assert tiling.tile_overlap(90, 4) == 2 * 92 + 16 and tiling.tile_overlap(294, 16) == 2 * 304 + 32
    assert tiling.min_tile(90, 4) == 404 and tiling.min_tile(294, 16) == 1296
    tiling.check_tile(404, 90, 4)
    tiling.check_tile(407, 90, 4)  # floored to 404 like plan_tiles does
    with pytest.raises(UsageError, match=r"^--tile 400: too small .* 90 px .* the smallest is 404$"):
        tiling.check_tile(400, 90, 4)
    with pytest.raises(UsageError, match="overlap 100: too small .* the smallest is 200"):
        tiling.check_tile(2048, 90, 4, overlap=100)
    plan = tiling.plan_tiles(700, 1100, 4, 404, context=90)
    for t in plan.tiles:  # every pixel a tile contributes lies a margin inside it, or at the frame's edge
        ys, xs = np.nonzero(t.weight)
        assert t.y == 0 or ys.min() >= 92
        assert t.x == 0 or xs.min() >= 92
        assert t.y + t.h == plan.padded_h or t.h - 1 - ys.max() >= 92
        assert t.x + t.w == plan.padded_w or t.w - 1 - xs.max() >= 92
    with pytest.raises(UsageError, match="the smallest is 404"):
        tiling.plan_tiles(700, 1100, 4, 256, context=90)
    assert tiling.plan_tiles(200, 240, 4, 256, context=90).whole  # no tiles: any tile size will do


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


def test_blender_ramps_between_tiles_with_distinct_outputs() -> None:
    """Each tile returns the frame plus its own offset: where one tile alone counts the result is exactly its
    output, a tile's margin never counts, and across a seam the result moves by at most the ramp's slope (a hard
    cut would jump by the whole difference between two tiles)."""
    h, w, context, stride = 333, 517, 10, 4
    frame = np.random.default_rng(0).uniform(0, 1, (h, w, 3)).astype(np.float32)
    plan = tiling.plan_tiles(h, w, stride, 128, context=context)
    margin, ramp = (
        tiling.seam_margin(context, stride),
        tiling.tile_overlap(context, stride) - 2 * tiling.seam_margin(context, stride),
    )
    offsets = np.arange(len(plan.tiles), dtype=np.float32) * 0.25  # tile k adds k / 4: all distinct
    blender = tiling.Blender(plan, 3)
    for t, offset in zip(plan.tiles, offsets, strict=True):
        blender.add(t, tiling.tile_input(frame, t) + offset)
    shift = blender.result() - frame
    assert len(plan.tiles) == 24 and np.ptp(shift) > 5.0
    weight_of = np.zeros((len(plan.tiles), plan.padded_h, plan.padded_w), np.float32)
    for k, t in enumerate(plan.tiles):
        weight_of[k, t.y : t.y + t.h, t.x : t.x + t.w] = t.weight
        inner = np.zeros((plan.padded_h, plan.padded_w), bool)  # the tile's margins at its seams
        inner[t.y : t.y + t.h, t.x : t.x + t.w] = True
        y0, x0 = t.y + (margin if t.y else 0), t.x + (margin if t.x else 0)
        y1 = t.y + t.h - (margin if t.y + t.h < plan.padded_h else 0)
        x1 = t.x + t.w - (margin if t.x + t.w < plan.padded_w else 0)
        inner[y0:y1, x0:x1] = False
        assert not weight_of[k][inner].any()
    alone = (weight_of > 0).sum(axis=0)[:h, :w] == 1
    owner = weight_of.argmax(axis=0)[:h, :w]
    np.testing.assert_allclose(shift[alone], np.repeat(offsets[owner[alone]][:, None], 3, axis=1), atol=1e-5)
    steepest = max(np.abs(np.diff(shift, axis=0)).max(), np.abs(np.diff(shift, axis=1)).max())
    largest_gap = max(abs(a - b) for a in offsets for b in offsets)
    assert steepest <= largest_gap / ramp * 1.01 < 0.5 * largest_gap, (steepest, largest_gap)


def test_blender_reassembles_a_frame_from_its_tiles() -> None:
    frame = np.random.default_rng(0).uniform(0, 1, (333, 517, 3)).astype(np.float32)
    plan = tiling.plan_tiles(333, 517, 4, 128, context=10)
    blender = tiling.Blender(plan, 3)
    for t in plan.tiles:
        blender.add(t, tiling.tile_input(frame, t))
    np.testing.assert_allclose(blender.result(), frame, atol=1e-6)
