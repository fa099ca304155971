"""Two parallel folders per split, blurred and sharp frames matched by file name.

- RAW/SPLIT/{input,target}/NAME.png: the MPRNet test-set downloads (`Datasets/GoPro/test/input`, HIDE,
  RealBlur_J, RealBlur_R); every folder of RAW holding input/ or target/ is a split.
- RAW/{input,target}/NAME.png with `--split NAME`: Restormer's `Datasets/test/HIDE/{input,target}`.
- `--blur-dir DIR --sharp-dir DIR --split NAME`: any two folders (as given, or relative to RAW).

Such a source has no scenes: its pairs' scene is the source name (`test/A/HIDE_NAME.png`), which also keeps two
sources apart in one organized dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.layouts.base import (
    LayoutArgs,
    Plan,
    default_source,
    require_split,
    resolve_path,
    safe_name,
)
from pipeline.layouts.frames import match_folders, no_pairs_line, subdirs

BLUR_DIR, SHARP_DIR = "input", "target"


def _has_pair_folders(folder: Path) -> bool:
    return (folder / BLUR_DIR).is_dir() or (folder / SHARP_DIR).is_dir()


def _folders(args: LayoutArgs) -> tuple[list[tuple[str, Path, Path]], bool, list[Path]]:
    """[(split, blur folder, sharp folder)], whether they are every split of the source, and the RAW roots."""
    raw = Path(args.raw).absolute()
    if args.blur_dir or args.sharp_dir:
        if not (args.blur_dir and args.sharp_dir):
            raise UsageError("--blur-dir and --sharp-dir go together: give both folders")
        split = require_split(args, "--blur-dir/--sharp-dir name two folders, not a split")
        blur, sharp = (
            resolve_path(raw, args.blur_dir, "--blur-dir"),
            resolve_path(raw, args.sharp_dir, "--sharp-dir"),
        )
        return [(split, blur, sharp)], False, [blur, sharp]
    if not raw.is_dir():
        raise UsageError(f"--raw {args.raw}: not found or not a directory; expected {LAYOUT.expected}")
    if _has_pair_folders(raw):
        split = require_split(
            args, f"{args.raw} holds {BLUR_DIR}/ and {SHARP_DIR}/ directly, with no split folder"
        )
        return [(split, raw / BLUR_DIR, raw / SHARP_DIR)], False, [raw]
    splits = [name for name in subdirs(raw) if _has_pair_folders(raw / name)]
    if not splits:
        raise UsageError(
            f"--raw {args.raw}: no {BLUR_DIR}/ or {SHARP_DIR}/ folders; expected {LAYOUT.expected}"
        )
    if args.split:
        if args.split not in splits:
            raise UsageError(f"--split {args.split}: not in {args.raw} (splits: {', '.join(splits)})")
        splits = [args.split]
    for split in splits:
        safe_name(split, f"split folder {raw / split}:")
    return [(s, raw / s / BLUR_DIR, raw / s / SHARP_DIR) for s in splits], not args.split, [raw]


class PairsLayout:
    name = "pairs"
    expected = "pairs: SPLIT/{input,target}/NAME.png as MPRNet's test sets, or --blur-dir DIR --sharp-dir DIR --split NAME"

    def detect(self, raw: Path) -> str | None:
        if _has_pair_folders(raw):
            return f"{{{BLUR_DIR},{SHARP_DIR}}}/ (give --split)"
        splits = [name for name in subdirs(raw) if _has_pair_folders(raw / name)]
        if not splits:
            return None
        where = splits[0] if len(splits) == 1 else "{" + ",".join(splits) + "}"
        return f"{where}/{{{BLUR_DIR},{SHARP_DIR}}}"

    def plan(self, args: LayoutArgs) -> Plan:
        folders, whole, roots = _folders(args)
        if args.source:
            source = safe_name(args.source, "--source")
        elif args.blur_dir:  # Datasets/test/HIDE/{input,target}: the folder both sit in names the dataset
            source = default_source(Path(os.path.commonpath([folders[0][1], folders[0][2]])).name)
        else:
            source = default_source(Path(args.raw).absolute().name)
        result = Plan(
            raw=Path(args.raw).absolute(),
            layout=self.name,
            source=source,
            blur=None,
            splits=tuple(split for split, _, _ in folders),
            whole_source=whole,
            roots=roots,
        )
        for split, blur, sharp in folders:
            pairs, rejects = match_folders(blur, sharp, split, source, source, split)
            result.pairs.extend(pairs)
            result.rejects.extend(rejects)
            result.folders.extend([blur, sharp])
        return result

    def no_pairs_message(self, args: LayoutArgs, plan: Plan) -> str:
        return no_pairs_line(plan.folders, plan.rejects, "none with matching file names")


LAYOUT = PairsLayout()
