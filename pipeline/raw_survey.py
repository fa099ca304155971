"""What a RAW tree holds, for the one-line error when organize finds no good pair in it.

"no good pairs (0 rejected)" leaves the user guessing; this names the scene count, the files found per folder and
suffix, the folders that were asked for, and the likely fix (frames under `blur/` when `--blur blur_gamma` was
asked, TIFF frames, ...). It lists every scene folder again, which only happens on that error path.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from pipeline.imageheader import IMAGE_SUFFIXES, is_image_name

BLUR_FOLDERS = ("blur", "blur_gamma")


def folder_counts(scene_dirs: list[Path]) -> dict[str, Counter[str]]:
    """{folder name: Counter of lower-cased file suffixes} over the sub-folders of every scene; hidden files and
    nested folders are not counted."""
    counts: dict[str, Counter[str]] = {}
    for scene in scene_dirs:
        with os.scandir(scene) as entries:
            folders = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
        for folder in folders:
            found = counts.setdefault(folder.name, Counter())
            with os.scandir(folder.path) as files:
                for f in files:
                    if f.is_file() and not f.name.startswith("."):
                        found[os.path.splitext(f.name)[1].lower() or "(no suffix)"] += 1
    return counts


def _frames(counts: Counter[str]) -> int:
    return sum(n for suffix, n in counts.items() if is_image_name(suffix))


def _listing(counts: dict[str, Counter[str]]) -> str:
    parts = []
    for folder, found in sorted(counts.items()):
        by_suffix = " + ".join(
            f"{n} {suffix}" for suffix, n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        parts.append(f"{folder}/ {by_suffix or 'empty'}")
    return ", ".join(parts)


def no_pairs_message(
    raw: Path, blur: str, sharp: str, scene_dirs: list[Path], rejects: str, matched: bool
) -> str:
    """The error line: what was found, what was asked for, and a hint when one is evident.

    `rejects` is the reject summary ("missing_blur 24") or ""; `matched` says whether some frames did share a name
    (and were rejected for their contents), which changes what "none" means."""
    counts = folder_counts(scene_dirs)
    files = sum(sum(c.values()) for c in counts.values())
    scenes = f"{len(scene_dirs)} scene{'s' if len(scene_dirs) != 1 else ''}"
    found = f"{files} file{'s' if files != 1 else ''}" + (f" ({_listing(counts)})" if files else "")
    none = "none usable" if matched else "none"
    what = f"{none} under {blur}/ and {sharp}/" + ("" if matched else " with matching frame names")
    line = f"--raw {raw}: no good pairs to organize: {scenes}, {found}, {what}"
    if rejects:
        line += f"; rejected: {rejects}"
    asked = [counts.get(folder, Counter()) for folder in (blur, sharp)]
    other = next((f for f in BLUR_FOLDERS if f != blur), "")
    if not _frames(asked[0]) and _frames(counts.get(other, Counter())):
        line += f"; the blurred frames are under {other}/: pass --blur {other}"
    elif any(sum(c.values()) > _frames(c) for c in asked) and not all(_frames(c) for c in asked):
        line += f"; frames must be {', '.join(IMAGE_SUFFIXES[:-1])} or {IMAGE_SUFFIXES[-1]} files"
    return line
