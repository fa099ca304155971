"""`gopro-prep sample`: a synthetic dataset in the exact GOPRO_Large layout, made in seconds.

Each scene is a procedurally rendered canvas (gradient, noise texture, shapes with sharp edges, text strokes) seen
by a camera moving along a smooth random path (translation plus a little rotation and zoom). Every frame is the
GOPRO recipe over 7-13 consecutive sub-frames (pipeline.blur), so the blur is real motion blur and learnable.
The tree is written to a temporary sibling and renamed into place: a half-written sample never looks complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pipeline.blur import DEFAULT_GAMMA, blur_triple
from pipeline.console import log
from pipeline.errors import UsageError

WINDOW_RANGE = (7, 13)
MIN_SIZE = (16, 16)
PNG_LEVEL = 1  # fast; PNG is lossless at any level


def stable_hash(key: str) -> int:
    """A process-independent 32-bit hash of `key` (Python's hash() is salted per process)."""
    return zlib.crc32(key.encode("utf-8"))


def parse_size(text: str) -> tuple[int, int]:
    """`"320x180"` -> `(320, 180)` as (width, height)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 320x180")
    w, h = int(match.group(1)), int(match.group(2))
    if w < MIN_SIZE[0] or h < MIN_SIZE[1] or w > 8192 or h > 8192:
        raise UsageError(f"--size {text!r}: width and height must be between {MIN_SIZE[0]} and 8192")
    return w, h


def scene_name(index: int, window: int) -> str:
    """GOPRO-style scene folder name; the middle number is the count of averaged sub-frames."""
    return f"GOPR{index + 1:04d}_{window:02d}_00"


def frame_name(index: int) -> str:
    """GOPRO-style frame file name, numbered from 000001."""
    return f"{index + 1:06d}.png"


def render_canvas(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A textured BGR uint8 canvas: gradient, smooth and fine noise, shapes with hard edges, text strokes."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / max(height, width)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    c0, c1 = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    canvas = c0 + ramp[..., None] * (c1 - c0)
    # Smooth blotches (low-frequency noise upsampled) and a fine grain: texture everywhere, not flat patches.
    coarse = rng.normal(0, 28, size=(max(2, height // 24), max(2, width // 24), 3)).astype(np.float32)
    canvas += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    canvas += rng.normal(0, 7, size=canvas.shape).astype(np.float32)
    img = np.ascontiguousarray(np.clip(canvas, 0, 255).astype(np.uint8))

    def color() -> tuple[int, int, int]:
        return tuple(int(v) for v in rng.integers(0, 256, size=3))

    def point() -> tuple[int, int]:
        return int(rng.integers(0, width)), int(rng.integers(0, height))

    scale = min(height, width)
    for _ in range(max(12, height * width // 2500)):
        kind = rng.integers(0, 5)
        thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
        if kind == 0:
            x, y = point()
            w, h = (int(v) for v in rng.integers(4, max(5, scale // 5), size=2))
            cv2.rectangle(img, (x, y), (x + w, y + h), color(), thick)
        elif kind == 1:
            cv2.circle(img, point(), int(rng.integers(3, max(4, scale // 8))), color(), thick, cv2.LINE_AA)
        elif kind == 2:
            center = np.array(point(), dtype=np.float64)
            n = int(rng.integers(3, 7))
            radius = rng.uniform(4, max(5, scale / 7), size=n)
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=n))
            pts = center + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius[:, None]
            cv2.fillPoly(img, [pts.astype(np.int32)], color(), cv2.LINE_AA)
        elif kind == 3:
            cv2.line(img, point(), point(), color(), int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            # A small checkerboard patch: dense edges in two directions.
            x, y = point()
            cell = int(rng.integers(2, 6))
            n = int(rng.integers(3, 8))
            board = (np.add.outer(np.arange(n * cell) // cell, np.arange(n * cell) // cell) % 2).astype(bool)
            patch = img[y : y + n * cell, x : x + n * cell]
            patch[board[: patch.shape[0], : patch.shape[1]]] = color()
    letters = "ABCDEFGHKMNPRSTWXYZ0123456789"
    for _ in range(max(4, height * width // 12000)):
        text = "".join(rng.choice(list(letters), size=int(rng.integers(2, 7))))
        font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN]))
        size = float(rng.uniform(0.3, 1.0)) * scale / 200
        cv2.putText(img, text, point(), font, max(size, 0.35), color(), int(rng.integers(1, 3)), cv2.LINE_AA)
    return img


def _wave(
    t: np.ndarray, rng: np.random.Generator, periods: tuple[float, float], terms: int = 2
) -> np.ndarray:
    """A smooth bounded random signal: a sum of sinusoids with random periods, phases and weights."""
    out = np.zeros_like(t)
    for _ in range(terms):
        out += rng.uniform(0.5, 1.0) * np.sin(
            2 * np.pi * t / rng.uniform(*periods) + rng.uniform(0, 2 * np.pi)
        )
    return out


def camera_path(steps: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random camera path, one row per sub-frame: (dx, dy, angle_deg, zoom).

    Position is a bounded Lissajous-like curve scaled to a mean speed of 0.5-1.5 px per sub-frame (several
    pixels of motion over a 7-13 sub-frame window); speed and direction vary along it, so blur length and
    direction differ from frame to frame, and long scenes circle around instead of drifting off a huge canvas.
    """
    t = np.arange(steps, dtype=np.float64)
    dx, dy = _wave(t, rng, (120, 400)), _wave(t, rng, (120, 400))
    if steps > 1:
        mean_speed = float(np.hypot(np.diff(dx), np.diff(dy)).mean())
        scale = rng.uniform(0.5, 1.5) / max(mean_speed, 1e-3)
        dx, dy = dx * scale, dy * scale
    angle = 1.5 * _wave(t, rng, (80, 300))  # degrees of roll, bounded
    zoom = 1 + 0.02 * _wave(t, rng, (80, 300))
    return np.stack([dx - dx.mean(), dy - dy.mean(), angle, zoom], axis=1)


def render_subframes(size: tuple[int, int], steps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield `steps` consecutive sharp sub-frames (BGR uint8, size=(w, h)) of one scene along a camera path."""
    w, h = size
    path = camera_path(steps, rng)
    # The canvas must hold the frame's rotated, zoomed-out footprint wherever the path goes.
    reach = 0.5 * np.hypot(w, h) / path[:, 3].min() + 4
    canvas_w = int(np.ceil(2 * (reach + np.abs(path[:, 0]).max())))
    canvas_h = int(np.ceil(2 * (reach + np.abs(path[:, 1]).max())))
    canvas = render_canvas(canvas_h, canvas_w, rng)
    for dx, dy, angle, zoom in path:
        cx, cy = canvas_w / 2 + dx, canvas_h / 2 + dy
        m = cv2.getRotationMatrix2D((cx, cy), angle, zoom)
        m[:, 2] += (w / 2 - cx, h / 2 - cy)
        yield cv2.warpAffine(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_triple(scene_dir: Path, name: str, images: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Write one window's (blur, blur_gamma, sharp) as SCENE/{blur,blur_gamma,sharp}/NAME."""
    for folder, image in zip(("blur", "blur_gamma", "sharp"), images, strict=True):
        path = scene_dir / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL]):
            raise OSError(f"{path}: could not write PNG")


@contextlib.contextmanager
def staged_tree(out: Path) -> Iterator[Path]:
    """Yield a temporary directory next to `out`; on success it becomes `out` by one rename, else it is removed.

    `out` may not exist yet or be an empty directory; anything else is refused (never mix two datasets).
    """
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise UsageError(f"{out}: exists and is not a directory")
        if any(out.iterdir()):
            raise UsageError(f"{out}: directory is not empty; choose a new --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        os.replace(tmp, out)  # rename(2) replaces an empty directory atomically
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_sample(out: Path, scenes: int, frames: int, size: tuple[int, int], seed: int) -> None:
    """Write `scenes` scenes of `frames` frames each; the last max(1, scenes // 4) scenes form the test split."""
    if scenes < 2:
        raise UsageError(f"--scenes {scenes}: need at least 2 (one train and one test scene)")
    if frames < 1:
        raise UsageError(f"--frames {frames}: need at least 1")
    w, h = size
    if w < MIN_SIZE[0] or h < MIN_SIZE[1]:
        raise UsageError(f"--size {w}x{h}: width and height must be at least {MIN_SIZE[0]}")
    n_test = max(1, scenes // 4)
    with staged_tree(Path(out)) as tmp:
        for index in range(scenes):
            rng = np.random.default_rng([seed, stable_hash(f"sample-scene-{index}")])
            window = int(rng.integers(WINDOW_RANGE[0], WINDOW_RANGE[1] + 1))
            split = "test" if index >= scenes - n_test else "train"
            scene_dir = tmp / split / scene_name(index, window)
            subframes = render_subframes(size, frames * window, rng)
            for f in range(frames):
                stack = np.stack([next(subframes) for _ in range(window)])
                write_triple(scene_dir, frame_name(f), blur_triple(stack, DEFAULT_GAMMA))
    log(
        f"sample: {scenes} scenes (train {scenes - n_test}, test {n_test}) x {frames} frames of {w}x{h} "
        f"(blur, blur_gamma, sharp) -> {out}"
    )
