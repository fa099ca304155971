"""Tiling of large images, as pure numpy: where tiles go, how their outputs blend, which pixels each one owns.

A frame larger than `tile` pixels on a side is cut into overlapping tiles whose origins are multiples of the
model's stride, laid over the frame padded to the stride (the model pads it the same way when it runs whole).
Near a seam a tile's output is not used for a margin of the model's receptive-field radius (`context`, from its
arch): there the model saw the tile's border instead of the neighbouring pixels. Past the margin every output
pixel saw only real image, so with full-frame statistics (frame_stats.py) it equals the whole-frame one; the
outputs are blended with linear ramps between the margins. Each tile also owns a "core": the tiles' cores
partition the padded frame at stride-aligned seams in the middle of each overlap, so full-frame statistics can be
summed from tiles without counting a pixel twice; a core lies a margin inside its tile, so its features are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SIDE = (
    32  # tiny images are reflect-padded up to this so every stage of a generator has pixels to pad from
)
DEFAULT_TILE = 2048  # 1080p and GOPRO frames run whole; 4K frames are tiled
MIN_RAMP = 16  # blend ramp width in pixels (at least two strides)


def padded_size(n: int, stride: int, min_side: int = MIN_SIDE) -> int:
    """Smallest multiple of `stride` that is >= n and >= min_side."""
    return max(-(-n // stride), -(-min_side // stride)) * stride


def reflect_indices(n: int, total: int) -> np.ndarray:
    """Indices 0..total-1 folded into [0, n) by mirror reflection without repeating the edge (np.pad 'reflect')."""
    i = np.arange(total)
    if n == 1:
        return np.zeros(total, dtype=np.int64)
    period = 2 * (n - 1)
    j = i % period
    return np.where(j < n, j, period - j)


def tile_starts(length: int, tile: int, overlap: int, stride: int) -> list[int]:
    """Tile origins along one axis: multiples of `stride`, `overlap` apart at least, the last flush with the end."""
    if length <= tile:
        return [0]
    step = max(stride, (tile - overlap) // stride * stride)
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def blend_ramp(n: int, ramp_start: bool, ramp_end: bool, margin: int, width: int) -> np.ndarray:
    """Per-pixel weight along one tile axis: 0 for `margin` pixels at a seam, then a linear ramp over `width`,
    then 1. At image borders there is no seam and the weight stays 1."""
    d = np.arange(n, dtype=np.float32) + 0.5
    w = np.ones(n, dtype=np.float32)
    if ramp_start:
        w = np.minimum(w, np.clip((d - margin) / width, 0.0, 1.0))
    if ramp_end:
        w = np.minimum(w, np.clip((n - d - margin) / width, 0.0, 1.0))
    return w


def seam_margin(context: int, stride: int) -> int:
    """Pixels of a tile's output dropped at a seam: the receptive-field radius, rounded up to the stride."""
    return -(-max(0, context) // stride) * stride


def tile_overlap(context: int, stride: int) -> int:
    """How much neighbouring tiles overlap: a margin on each side and a blend ramp between."""
    return 2 * seam_margin(context, stride) + max(2 * stride, MIN_RAMP)


def min_tile(context: int, stride: int, overlap: int | None = None) -> int:
    """The smallest tile (a multiple of the stride) that fits the overlap twice: a tile with seams on both
    sides keeps a pixel of its own between them."""
    overlap = tile_overlap(context, stride) if overlap is None else overlap
    return (2 * overlap // stride + 1) * stride


def core_bounds(starts: list[int], size: int, length: int, stride: int) -> list[tuple[int, int]]:
    """[begin, end) of each tile's core along one axis: seams at the stride-aligned middle of each overlap."""
    seams = [0]
    for a, b in zip(starts, starts[1:], strict=False):
        middle = (b + a + size) // 2  # the middle of the overlap [b, a + size)
        seams.append(min(max(middle // stride * stride, b), a + size))
    seams.append(length)
    return list(zip(seams[:-1], seams[1:], strict=True))


@dataclass(frozen=True)
class Tile:
    """One tile of the padded frame: its box, its blend weights, and the box (relative to the tile) it owns."""

    y: int
    x: int
    h: int
    w: int
    weight: np.ndarray  # [h, w] float32 blend weights
    core: tuple[int, int, int, int]  # (y0, y1, x0, x1) within the tile


@dataclass(frozen=True)
class TilePlan:
    height: int  # the frame
    width: int
    padded_h: int  # the frame padded to the stride
    padded_w: int
    tiles: list[Tile]

    @property
    def whole(self) -> bool:
        return len(self.tiles) == 1


def default_tile(context: int, stride: int, overlap: int | None = None) -> int:
    """`DEFAULT_TILE`, or the smallest tile when the model needs more (NAFNet-32 with TLC: 2128)."""
    return max(DEFAULT_TILE, min_tile(context, stride, overlap))


def plan_tiles(
    height: int, width: int, stride: int, tile: int, context: int = 0, overlap: int | None = None
) -> TilePlan:
    """Where the tiles of an HxW frame go (one tile when the padded frame fits `tile`), for a model whose
    receptive-field radius is `context`; `overlap` (default `tile_overlap`) may only be larger."""
    ph, pw = padded_size(height, stride), padded_size(width, stride)
    tile = max(stride, tile // stride * stride)
    if ph <= tile and pw <= tile:
        whole = Tile(0, 0, ph, pw, np.ones((ph, pw), np.float32), (0, ph, 0, pw))
        return TilePlan(height, width, ph, pw, [whole])
    margin, needed = seam_margin(context, stride), tile_overlap(context, stride)
    overlap = needed if overlap is None else overlap
    check_tile(tile, context, stride, overlap)
    th, tw = min(tile, ph), min(tile, pw)
    ys, xs = tile_starts(ph, tile, overlap, stride), tile_starts(pw, tile, overlap, stride)
    cores_y, cores_x = core_bounds(ys, th, ph, stride), core_bounds(xs, tw, pw, stride)
    ramp = overlap - 2 * margin
    tiles = []
    for y0, (cy0, cy1) in zip(ys, cores_y, strict=True):
        wy = blend_ramp(th, y0 > 0, y0 + th < ph, margin, ramp)
        for x0, (cx0, cx1) in zip(xs, cores_x, strict=True):
            wx = blend_ramp(tw, x0 > 0, x0 + tw < pw, margin, ramp)
            core = (cy0 - y0, cy1 - y0, cx0 - x0, cx1 - x0)
            tiles.append(Tile(y0, x0, th, tw, wy[:, None] * wx[None, :], core))
    return TilePlan(height, width, ph, pw, tiles)


def check_tile(tile: int, context: int, stride: int, overlap: int | None = None) -> None:
    """UsageError unless `tile` (and `overlap`, if given) leave every tiled pixel its full receptive field."""
    from pipeline.errors import UsageError

    needed, tile = tile_overlap(context, stride), tile // stride * stride
    if overlap is not None and overlap < needed:
        raise UsageError(
            f"overlap {overlap}: too small for a model that sees {context} px around each pixel; "
            f"the smallest is {needed}"
        )
    smallest = min_tile(context, stride, overlap)
    if tile < smallest:
        raise UsageError(
            f"--tile {tile}: too small for a model that sees {context} px around each pixel (tiles would "
            f"differ from the whole frame); the smallest is {smallest}"
        )


def tile_input(image: np.ndarray, t: Tile) -> np.ndarray:
    """The part of the (unpadded) frame under tile `t`; the model pads what lies beyond the frame by reflection,
    exactly as it pads the whole frame (tiles start on stride multiples and the last one is flush with the end)."""
    return image[t.y : t.y + t.h, t.x : t.x + t.w]


class Blender:
    """Accumulates tile outputs with their weights; `result()` is the frame."""

    def __init__(self, plan: TilePlan, channels: int) -> None:
        self.plan = plan
        self.acc = np.zeros((plan.padded_h, plan.padded_w, channels), np.float32)
        self.weight = np.zeros((plan.padded_h, plan.padded_w), np.float32)

    def add(self, t: Tile, out: np.ndarray) -> None:
        h, w = out.shape[:2]  # the tile's output, cropped to the frame where the tile reaches past it
        self.acc[t.y : t.y + h, t.x : t.x + w] += out * t.weight[:h, :w, None]
        self.weight[t.y : t.y + h, t.x : t.x + w] += t.weight[:h, :w]

    def result(self) -> np.ndarray:
        h, w = self.plan.height, self.plan.width
        return self.acc[:h, :w] / self.weight[:h, :w, None]
