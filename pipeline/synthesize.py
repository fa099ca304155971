"""`gopro-prep synthesize`: the GOPRO blur recipe applied to real sharp high-frame-rate frames.

Input is laid out like GOPRO_Large_all (`SPLIT/SCENE/NNNNNN.png`, every 240 fps frame); output is a GOPRO_Large
tree (`SPLIT/SCENE/{blur,blur_gamma,sharp}/NNNNNN.png`). Each scene's frames, sorted by name, are cut into
consecutive non-overlapping windows; each window gives one triple named after its middle (sharp) source frame, so
`sharp/F.png` is exactly the input `F.png`. A trailing partial window is dropped. Only one window is held in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pipeline.blur import blur_triple, middle_index
from pipeline.console import log, track
from pipeline.errors import DataError, UsageError
from pipeline.sample import stable_hash, staged_tree, write_triple

SPLITS = ("train", "test")
MAX_WINDOW = 1000


def parse_window(text: str) -> tuple[int, int]:
    """`"7..13"` -> `(7, 13)`; `"9"` -> `(9, 9)`: the range of sub-frames averaged per blurred frame."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?", text)
    if not match:
        raise UsageError(f"--window {text!r}: expected N or LO..HI, e.g. 7..13")
    lo = int(match.group(1))
    hi = int(match.group(2)) if match.group(2) is not None else lo
    if not 1 <= lo <= hi <= MAX_WINDOW:
        raise UsageError(f"--window {text!r}: need 1 <= LO <= HI <= {MAX_WINDOW}")
    return lo, hi


def window_sizes(total: int, window: tuple[int, int], rng: np.random.Generator) -> list[int]:
    """Sizes of consecutive windows that fit in `total` frames; each drawn from `window` (inclusive)."""
    lo, hi = window
    sizes: list[int] = []
    used = 0
    while True:
        size = int(rng.integers(lo, hi + 1))
        if used + size > total:
            return sizes
        sizes.append(size)
        used += size


def list_frames(scene_dir: Path) -> list[Path]:
    """The scene's PNG frames sorted by file name (never by listing order); hidden files and junk skipped."""
    with os.scandir(scene_dir) as entries:
        names = [
            e.name
            for e in entries
            if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(".png")
        ]
    return [scene_dir / name for name in sorted(names)]


def _read(path: Path, shape: tuple[int, ...] | None) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR) if path.stat().st_size else None
    if image is None:
        raise DataError(f"{path}: cannot decode PNG")
    if shape is not None and image.shape != shape:
        got, want = f"{image.shape[1]}x{image.shape[0]}", f"{shape[1]}x{shape[0]}"
        raise DataError(f"{path}: frame is {got}, the scene's frames are {want}")
    return image


def _scenes(frames_dir: Path) -> Iterator[tuple[str, Path]]:
    for split in SPLITS:
        split_dir = frames_dir / split
        if split_dir.is_dir():
            for scene in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                yield split, scene


def synthesize_scene(
    scene_dir: Path, out_scene: Path, window: tuple[int, int], gamma: float, rng: np.random.Generator
) -> int:
    """Write the triples of one scene; returns how many. Only one window of frames is in memory at a time."""
    frames = list_frames(scene_dir)
    start = count = 0
    shape = None
    for size in window_sizes(len(frames), window, rng):
        paths = frames[start : start + size]
        start += size
        stack = []
        for path in paths:
            stack.append(_read(path, shape))
            shape = stack[-1].shape
        write_triple(out_scene, paths[middle_index(size)].stem + ".png", blur_triple(np.stack(stack), gamma))
        count += 1
    return count


def run(frames_dir: Path, out: Path, window: tuple[int, int], gamma: float = 2.2, seed: int = 0) -> int:
    """Synthesize a GOPRO_Large tree at `out` from the frames under `frames_dir`; returns the number of triples."""
    frames_dir, out = Path(frames_dir), Path(out)
    if not frames_dir.is_dir():
        raise UsageError(
            f"--frames {frames_dir}: not a directory; expected SPLIT/SCENE/NNNNNN.png (train/, test/)"
        )
    if frames_dir.resolve() in (out.resolve(), *out.resolve().parents):
        raise UsageError(f"--out {out}: is inside --frames {frames_dir}; choose an OUT outside it")
    scenes = list(_scenes(frames_dir))
    if not scenes:
        raise UsageError(
            f"--frames {frames_dir}: no scene folders; expected train/SCENE/NNNNNN.png or test/SCENE/..."
        )
    total = 0
    with staged_tree(out) as tmp:
        for split, scene_dir in track(scenes, total=len(scenes), description="synthesize"):
            rng = np.random.default_rng([seed, stable_hash(f"{split}/{scene_dir.name}")])
            total += synthesize_scene(scene_dir, tmp / split / scene_dir.name, window, gamma, rng)
        if total == 0:
            raise DataError(
                f"--frames {frames_dir}: no scene has enough frames for one window of {window[0]}"
            )
    log(f"synthesized {total} blur/blur_gamma/sharp triples from {len(scenes)} scenes into {out}")
    return total
