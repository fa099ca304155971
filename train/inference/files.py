"""`trainctl deblur INPUT... --out DIR`: image files, folders of them and videos in; the same names out.

Images (PNG, JPEG, TIFF, WebP, BMP, whether named or found in a folder) are written as OUT/<stem>.png, kept gray,
gray + alpha, RGBA or 16-bit as they came, a JPEG turned the way its EXIF orientation says (one line per file says
what was done); videos go through train.inference.video. Decoding the next image and encoding the last one run on
threads while the model works, so files cost little beyond the model itself. Inputs are never overwritten; a file
that cannot be read is reported and skipped; files in folders that are neither images nor videos, and subfolders
(not searched), are counted in the summary; the failure count becomes the exit status.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import fsio
from pipeline.console import log, track
from pipeline.errors import DataError, UsageError
from train.inference import images

FORMATS = "PNG, JPEG, TIFF, WebP, BMP images; MP4, MOV, AVI, MKV, WebM videos"


@dataclass
class Inputs:
    images: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # files in folders that are neither
    subfolders: list[Path] = field(default_factory=list)  # folders inside named folders: not searched


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in images.IMAGE_SUFFIXES:
        return "image"
    if suffix in images.VIDEO_SUFFIXES:
        return "video"
    return None


def collect(inputs: Sequence[str | Path]) -> Inputs:
    """Named files, and the files directly inside named folders (sorted, hidden files ignored), by kind."""
    found = Inputs()
    for item in map(Path, inputs):
        if item.is_dir():
            visible = sorted(p for p in item.iterdir() if not p.name.startswith("."))
            entries = [p for p in visible if p.is_file()]
            found.subfolders += [p for p in visible if p.is_dir()]
        elif item.is_file():
            if _kind(item) is None:
                raise UsageError(f"{item}: not a supported file ({FORMATS})")
            entries = [item]
        else:
            raise UsageError(f"{item}: no such file or folder")
        for path in entries:
            kind = _kind(path)
            (found.images if kind == "image" else found.videos if kind == "video" else found.skipped).append(
                path
            )
    if not found.images and not found.videos:
        raise DataError(f"nothing to deblur in {', '.join(map(str, inputs))} ({FORMATS})")
    return found


def output_path(src: Path, out: Path, codec: Any = None) -> Path:
    """OUT/<stem>.png for an image; for a video, the name train.inference.video gives it with `codec`."""
    if _kind(src) == "video":
        from train.inference.video import output_name

        return out / output_name(src, codec)
    return out / f"{src.stem}.png"


def plan_outputs(files: Sequence[Path], out: Path, codec: Any = None) -> list[tuple[Path, Path]]:
    """Pair each input with its output in OUT (videos: written with `codec`, the default when None); refuse name
    clashes and any output that would replace an input."""

    def real(p: Path) -> str:
        return os.path.normcase(os.path.realpath(p))

    inputs = {real(f) for f in files}
    inodes = {(st.st_dev, st.st_ino) for st in (f.stat() for f in files)}
    plan: list[tuple[Path, Path]] = []
    claimed: dict[str, Path] = {}
    for src in files:
        dst = output_path(src, out, codec)
        key = real(dst)
        if key in claimed:
            raise UsageError(
                f"{src} and {claimed[key]} would both be written to {dst}; deblur them separately"
            )
        if key in inputs or (dst.exists() and (dst.stat().st_dev, dst.stat().st_ino) in inodes):
            raise UsageError(f"{dst}: refusing to overwrite an input; choose another --out folder")
        claimed[key] = src
        plan.append((src, dst))
    return plan


def _line(src: Path, loaded: InputImage, tiles: int, dst: Path) -> str:
    h, w = loaded.image.shape[:2]
    done = "; ".join(n for n in (loaded.note, loaded.layout.what_was_done()) if n)
    parts = [f"{loaded.layout.describe()} {w}x{h}"]
    if tiles > 1:
        parts.append(f"{tiles} tiles")
    return f"{src.name}: {', '.join(parts)}{' (' + done + ')' if done else ''} -> {dst}"


@dataclass(frozen=True)
class InputImage:
    """A decoded input file, taken apart for the model."""

    image: np.ndarray  # as read (a JPEG turned by its EXIF orientation)
    note: str  # what reading did ("EXIF orientation 6 applied: ..."), "" if nothing
    rgb01: np.ndarray
    alpha: np.ndarray | None
    layout: images.Layout


def _load(path: Path) -> InputImage:
    image, note = images.load(path)
    try:
        return InputImage(image, note, *images.split(image))
    except DataError as exc:  # a float TIFF outside [0, 1], an odd channel count: name the file
        raise DataError(f"{path}: {exc}") from None


def _store(dst: Path, rgb01: np.ndarray, alpha: np.ndarray | None, layout: images.Layout) -> None:
    fsio.write_bytes(dst, images.encode_png(images.join(rgb01, alpha, layout)))


def deblur_images(deblurrer: Any, plan: list[tuple[Path, Path]]) -> int:
    """Deblur image files: decoding (and conversion to float) ahead of the model and encoding behind it run on
    threads, so the model, on the calling thread, is all that is left to wait for. Returns the failures."""
    failed = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        reads: dict[int, Future] = {}
        writes: list[tuple[Path, Future]] = []

        def read_ahead(i: int) -> None:
            if i < len(plan) and i not in reads:
                reads[i] = pool.submit(_load, plan[i][0])

        read_ahead(0)
        for i in track(range(len(plan)), total=len(plan), description="deblur"):
            src, dst = plan[i]
            read_ahead(i + 1)
            try:
                loaded = reads.pop(i).result()
                tiles = len(deblurrer.plan(*loaded.rgb01.shape[:2]).tiles)
                restored = deblurrer.restore(loaded.rgb01)
            except DataError as exc:
                log(f"skipped: {exc}")
                failed += 1
                continue
            writes.append((dst, pool.submit(_store, dst, restored, loaded.alpha, loaded.layout)))
            log(_line(src, loaded, tiles, dst))
        for dst, done in writes:
            try:
                done.result()
            except (OSError, DataError) as exc:
                log(f"failed: {dst}: {getattr(exc, 'strerror', None) or exc}")
                failed += 1
    return failed


def run(
    deblurrer: Any,
    inputs: Sequence[str | Path],
    out: str | Path,
    batch: int = 4,
    codec: str | None = None,
    crf: int | None = None,
) -> int:
    """`trainctl deblur`: every input into `out` (videos with `codec` at quality `crf`, the defaults when None:
    train.inference.video_codecs); returns the number of inputs that failed."""
    from train.inference import video_codecs

    choice = video_codecs.choose(codec, crf)  # a bad --codec/--crf is refused before anything is read
    for path in [*map(str, inputs), str(out)]:
        if "://" in path:  # pathlib would quietly turn gs://b/x into a local gs:/b/x
            raise UsageError(
                f"{path}: deblur reads and writes local files; copy them from/to the bucket first"
            )
    out = Path(out)
    found = collect(inputs)
    plan = plan_outputs([*found.images, *found.videos], out, choice.codec)
    out.mkdir(parents=True, exist_ok=True)
    image_plan = [(s, d) for s, d in plan if _kind(s) == "image"]
    failed = deblur_images(deblurrer, image_plan) if image_plan else 0
    for src, dst in plan:
        if _kind(src) == "video":
            from train.inference.video import deblur_video

            failed += 0 if deblur_video(deblurrer, src, dst, batch, choice) else 1
    skipped = f"; {len(found.skipped)} other files in the folders skipped" if found.skipped else ""
    n = len(found.subfolders)
    if n:
        skipped += f"; {n} subfolder{'s' if n > 1 else ''} not searched (name {'them' if n > 1 else 'it'} to deblur {'their' if n > 1 else 'its'} files)"
    log(
        f"deblurred {len(plan) - failed} of {len(plan)} inputs into {out} with {deblurrer.describe()}"
        + (f"; {failed} failed" if failed else "")
        + skipped
    )
    return failed
