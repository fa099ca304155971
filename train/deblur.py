"""Deblur image files of any size with a generator version: `trainctl deblur --model VERSION_DIR INPUT... --out DIR`.

Each image is padded (reflect, bottom/right) to the generator's stride and cropped back. Images larger than
`tile` pixels on a side are cut into overlapping tiles whose outputs are blended with linear ramps that start a
margin inside each seam, so a 4K frame runs in the memory of one tile and no seam is visible. Inputs are never
overwritten; a file that cannot be read is reported and skipped, and the failure count becomes the exit status.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline import fsio
from pipeline.console import log, track
from pipeline.errors import DataError, UsageError

DEFAULT_STRIDE = 4  # DeblurGAN's, and the smallest any arch has
DEFAULT_TILE = 2048  # 1080p and GOPRO frames run whole (instance norm sees the full frame); 4K is tiled
MIN_SIDE = 32  # tiny images are reflect-padded up to this so every generator stage has pixels to pad from
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

Predict = Callable[
    [np.ndarray], np.ndarray
]  # uint8 [b,h,w,3] (h, w multiples of the stride) -> float32 [0, 255]


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


def pad_to_stride(img: np.ndarray, stride: int, min_side: int = MIN_SIDE) -> np.ndarray:
    """Reflect-pad an HxWxC image at the bottom and right to multiples of `stride` (no copy when already fit)."""
    h, w = img.shape[:2]
    ph, pw = padded_size(h, stride, min_side), padded_size(w, stride, min_side)
    if (ph, pw) == (h, w):
        return img
    return img[reflect_indices(h, ph)][:, reflect_indices(w, pw)]


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Round [0, 255] floats to uint8 (clipped)."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def forward_fn(generator: Any, input_range: tuple[float, float] = (-1.0, 1.0)) -> Callable[[Any], Any]:
    """Graph-side body: uint8 RGB batch -> generator in its `input_range` -> float32 in [0, 255] (unrounded,
    clipped)."""
    import tensorflow as tf

    lo, hi = input_range

    def forward(images: Any) -> Any:
        x = tf.cast(images, tf.float32) * ((hi - lo) / 255.0) + lo
        y = tf.cast(generator(x, training=False), tf.float32)
        return tf.clip_by_value((y - lo) * (255.0 / (hi - lo)), 0.0, 255.0)

    return forward


def make_predict(generator: Any, input_range: tuple[float, float] = (-1.0, 1.0)) -> Predict:
    """One traced function for every image size (the generator is fully convolutional)."""
    import tensorflow as tf

    fn = tf.function(
        forward_fn(generator, input_range), input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)]
    )
    return lambda batch: fn(tf.convert_to_tensor(batch, tf.uint8)).numpy()


def tile_starts(length: int, tile: int, overlap: int, stride: int) -> list[int]:
    """Tile origins along one axis: multiples of `stride`, `overlap` apart at least, the last flush with the end."""
    if length <= tile:
        return [0]
    step = max(stride, (tile - overlap) // stride * stride)
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def blend_ramp(n: int, ramp_start: bool, ramp_end: bool, overlap: int) -> np.ndarray:
    """Per-pixel weight along one tile axis: 1 inside, a linear ramp over `overlap` at seams, 0 in a margin.

    The margin (a quarter of the overlap) hides the tile border, where the generator sees padding instead of
    the neighbouring pixels; at image borders there is no seam and the weight stays 1.
    """
    margin = overlap // 4
    width = max(1, overlap - 2 * margin)
    d = np.arange(n, dtype=np.float32) + 0.5
    w = np.ones(n, dtype=np.float32)
    if ramp_start:
        w = np.minimum(w, np.clip((d - margin) / width, 0.0, 1.0))
    if ramp_end:
        w = np.minimum(w, np.clip((n - d - margin) / width, 0.0, 1.0))
    return w


def default_overlap(tile: int, stride: int) -> int:
    return max(2 * stride, tile // 8 // stride * stride)


def deblur_image(
    predict: Predict, img: np.ndarray, stride: int, tile: int = DEFAULT_TILE, overlap: int | None = None
) -> np.ndarray:
    """Deblur one uint8 RGB image of any size; tiles when a padded side exceeds `tile`. Returns uint8, same size."""
    h, w = img.shape[:2]
    padded = pad_to_stride(img, stride)
    ph, pw = padded.shape[:2]
    tile = max(stride, tile // stride * stride)
    if ph <= tile and pw <= tile:
        return to_uint8(predict(padded[None])[0, :h, :w])
    overlap = default_overlap(tile, stride) if overlap is None else overlap
    if not 0 < overlap < tile // 2:
        raise UsageError(f"overlap={overlap} must be between 1 and half the tile ({tile})")
    acc = np.zeros((ph, pw, 3), dtype=np.float32)
    weight = np.zeros((ph, pw), dtype=np.float32)
    th, tw = min(tile, ph), min(tile, pw)
    for y0 in tile_starts(ph, tile, overlap, stride):
        wy = blend_ramp(th, y0 > 0, y0 + th < ph, overlap)
        for x0 in tile_starts(pw, tile, overlap, stride):
            wx = blend_ramp(tw, x0 > 0, x0 + tw < pw, overlap)
            out = predict(padded[None, y0 : y0 + th, x0 : x0 + tw])[0]
            w2 = wy[:, None] * wx[None, :]
            acc[y0 : y0 + th, x0 : x0 + tw] += out * w2[..., None]
            weight[y0 : y0 + th, x0 : x0 + tw] += w2
    return to_uint8(acc[:h, :w] / weight[:h, :w, None])


def sample_grid(model: Any, blur_rgb: np.ndarray, sharp_rgb: np.ndarray, spec: Any = None) -> np.ndarray:
    """A blur | deblurred | sharp picture (uint8 RGB) for one HxWx3 pair or a row per pair of an NxHxWx3 batch,
    laid out like the trainer's sample grids (train.samples), but on full frames of any size."""
    from train.samples import sample_grid as grid_of

    blur, sharp = np.asarray(blur_rgb, np.uint8), np.asarray(sharp_rgb, np.uint8)
    if blur.shape != sharp.shape:
        raise ValueError(f"blur and sharp differ in shape: {blur.shape} vs {sharp.shape}")
    if blur.ndim == 3:
        blur, sharp = blur[None], sharp[None]
    from train.archs import spec_from_meta

    spec = spec or spec_from_meta({})
    predict, stride = make_predict(model, spec.input_range), spec.stride
    deblurred = np.stack([deblur_image(predict, b, stride) for b in blur])

    def signed(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32) / 127.5 - 1.0

    return grid_of(signed(blur), signed(deblurred), signed(sharp))


def read_rgb(path: Path) -> np.ndarray:
    """Decode a PNG/JPEG (8 or 16 bit, gray, RGB or RGBA) to uint8 RGB; DataError naming the file otherwise."""
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise DataError(f"{path}: cannot decode image (empty, truncated or not a PNG/JPEG)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def collect_inputs(inputs: Sequence[Path]) -> list[Path]:
    """Files as given, plus the PNG/JPEG files directly inside given folders (sorted, hidden files skipped)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if not found:
                log(f"warning: {path}: no PNG/JPEG images in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    if not files:
        raise DataError("nothing to deblur: no PNG/JPEG images in " + ", ".join(str(p) for p in inputs))
    return files


def plan_outputs(files: Sequence[Path], out: Path) -> list[tuple[Path, Path]]:
    """Pair each input with OUT/<stem>.png; refuse name clashes and any output that would replace an input."""

    def real(p: Path) -> str:
        return os.path.normcase(os.path.realpath(p))

    inputs = {real(f) for f in files}
    inodes = {(st.st_dev, st.st_ino) for st in (f.stat() for f in files)}
    plan: list[tuple[Path, Path]] = []
    claimed: dict[str, Path] = {}
    for src in files:
        dst = out / f"{src.stem}.png"
        key = real(dst)
        if key in claimed:
            raise UsageError(
                f"{src} and {claimed[key]} would both be written to {dst}; deblur them separately"
            )
        if key in inputs or (dst.exists() and (dst.stat().st_dev, dst.stat().st_ino) in inodes):
            raise UsageError(f"{dst}: refusing to overwrite an input image; choose another --out folder")
        claimed[key] = src
        plan.append((src, dst))
    return plan


def load_inference_model(model_dir: str | Path, tlc: bool = True) -> tuple[Any, Any, bool]:
    """A version's generator for inference, its ModelSpec, and whether TLC is on (where the arch has global
    statistics and `tlc` asks for it)."""
    from train.archs import spec_from_meta, with_tlc
    from train.versions import META_FILE, load_generator, read_meta

    spec = spec_from_meta(read_meta(model_dir), f"{model_dir}/{META_FILE}")
    generator = load_generator(model_dir)
    use_tlc = tlc and spec.tlc_base() is not None
    return (with_tlc(spec, generator) if use_tlc else generator), spec, use_tlc


def run(
    model_dir: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    tile: int = DEFAULT_TILE,
    overlap: int | None = None,
    tlc: bool = True,
) -> int:
    """Deblur every input into `out` as PNG with the same stem; returns the number of inputs that failed."""
    import tensorflow as tf

    for path in [*map(str, inputs), str(out)]:
        if "://" in path:  # pathlib would quietly turn gs://b/x into a local gs:/b/x
            raise UsageError(
                f"{path}: deblur reads and writes local files; copy them from/to the bucket first"
            )
    out = Path(out)
    plan = plan_outputs(collect_inputs([Path(p) for p in inputs]), out)
    if tile < 2 * DEFAULT_STRIDE:
        raise UsageError(f"--tile {tile}: too small")
    generator, spec, _ = load_inference_model(model_dir, tlc)
    predict, stride = make_predict(generator, spec.input_range), spec.stride
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for src, dst in track(plan, total=len(plan), description="deblur"):
        try:
            fsio.write_png(dst, deblur_image(predict, read_rgb(src), stride, tile, overlap))
        except DataError as exc:
            log(f"skipped: {exc}")
            failed += 1
        except (tf.errors.OpError, ValueError) as exc:
            log(f"failed: {src}: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}")
            failed += 1
    log(
        f"deblurred {len(plan) - failed} of {len(plan)} images into {out}"
        + (f"; {failed} failed" if failed else "")
    )
    return failed
