"""Pairing two folders of frames by file name, with cheap header checks: what the gopro and pairs layouts share.

A blurred and a sharp frame pair when their file names match without the suffix (a JPEG blur pairs with a PNG
sharp), never by position in a listing. Each pair is checked from its image headers (imageheader.py); what cannot
pair becomes a `Reject` with a reason, and a frame stored twice in one folder under two suffixes is rejected
rather than one picked silently.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.imageheader import IMAGE_SUFFIXES, ImageHeaderError, is_image_name, read_image_info
from pipeline.layouts.base import Pair, Reject, reject_summary

ANY_SUFFIX = "{" + ",".join(IMAGE_SUFFIXES) + "}"  # in messages: 000001{.png,.jpg,.jpeg}


def list_frames(folder: Path) -> dict[str, list[str]]:
    """{stem: [file names]} of the PNG and JPEG frames in `folder` (several names for a stem only when it exists
    with two suffixes); hidden files and other junk are skipped silently."""
    frames: dict[str, list[str]] = {}
    if not folder.is_dir():
        return frames
    with os.scandir(folder) as entries:
        for e in entries:
            if not e.name.startswith(".") and is_image_name(e.name) and e.is_file():
                frames.setdefault(os.path.splitext(e.name)[0], []).append(e.name)
    return {stem: sorted(names) for stem, names in frames.items()}


def header_size(path: Path, rejects: list[Reject], split: str) -> tuple[int, int] | None:
    """(width, height) from the image header, or None after adding an `unreadable` reject."""
    try:
        info = read_image_info(path)
    except (ImageHeaderError, OSError) as exc:
        rejects.append(Reject(str(path), "unreadable", getattr(exc, "strerror", None) or str(exc), split))
        return None
    return info.width, info.height


def checked_pair(
    a: Path, b: Path, names: tuple[str, str], key: tuple[str, str, str, str], rejects: list[Reject]
) -> Pair | None:
    """A Pair of blurred `a` and sharp `b` (key: split, scene, frame, source) when both headers read and the sizes
    agree; else None after adding the reject. `names` label the two sides in a size_mismatch detail."""
    split, scene, frame, source = key
    size_a, size_b = header_size(a, rejects, split), header_size(b, rejects, split)
    if size_a is None or size_b is None:
        return None
    if size_a != size_b:
        detail = f"{names[0]} {size_a[0]}x{size_a[1]} vs {names[1]} {size_b[0]}x{size_b[1]}"
        rejects.append(Reject(str(a), "size_mismatch", detail, split))
        return None
    return Pair(split, scene, frame, str(a), str(b), *size_a, source=source)


def _ambiguous(folder: Path, names: list[str], split: str) -> Reject:
    """A frame stored twice under different suffixes: which one is meant cannot be told, so neither is used."""
    stem = os.path.splitext(names[0])[0]
    detail = f"ambiguous: {' and '.join(names)} are both frame {stem} in {folder.name}/; keep one"
    return Reject(str(folder / names[0]), "unreadable", detail, split)


def match_folders(
    blur_dir: Path,
    sharp_dir: Path,
    split: str,
    scene: str,
    source: str,
    where: str,
    sharp_names: dict[str, list[str]] | None = None,
) -> tuple[list[Pair], list[Reject]]:
    """Pair the frames of `blur_dir` and `sharp_dir` by name, sorted by frame; `where` names the place in the
    missing_* details (`GOPR0372_07_00`, `test`). With `sharp_names` (a listing of a sharp folder shared by
    several blurred ones, as HIDE's GT/), only the blurred frames are paired: a sharp frame no blurred frame names
    is no reject."""
    blur_names = list_frames(blur_dir)
    shared = sharp_names is not None
    sharp_names = sharp_names if shared else list_frames(sharp_dir)
    stems = blur_names.keys() if shared else blur_names.keys() | sharp_names.keys()
    pairs: list[Pair] = []
    rejects: list[Reject] = []
    for stem in sorted(stems):
        blurs, sharps = blur_names.get(stem, []), sharp_names.get(stem, [])
        if len(blurs) > 1 or len(sharps) > 1:
            twice = ((blur_dir, blurs), (sharp_dir, sharps))
            rejects.extend(_ambiguous(folder, names, split) for folder, names in twice if len(names) > 1)
            continue
        if not sharps:
            detail = f"no {sharp_dir.name}/{stem}{ANY_SUFFIX} in {where}"
            rejects.append(Reject(str(blur_dir / blurs[0]), "missing_sharp", detail, split))
            continue
        if not blurs:
            detail = f"no {blur_dir.name}/{stem}{ANY_SUFFIX} in {where}"
            rejects.append(Reject(str(sharp_dir / sharps[0]), "missing_blur", detail, split))
            continue
        pair = checked_pair(
            blur_dir / blurs[0],
            sharp_dir / sharps[0],
            (blur_dir.name, sharp_dir.name),
            (split, scene, stem, source),
            rejects,
        )
        if pair is not None:
            pairs.append(pair)
    return pairs, rejects


def subdirs(folder: Path) -> list[str]:
    """Sorted names of the visible sub-folders of `folder` ([] when it is not a folder)."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


def no_pairs_line(folders: list[Path], rejects: list[Reject], why: str) -> str:
    """The "nothing paired" error of a layout that pairs folders by name: what each folder holds, and why."""
    found = ", ".join(f"{folder} {len(list_frames(folder))} frames" for folder in folders)
    line = f"no good pairs to organize: {found}, {why}"
    summary = reject_summary(rejects)
    return f"{line}; rejected: {summary}" if summary else line
