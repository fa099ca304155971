"""HIDE as its authors ship it (Shen et al. 2019, `HIDE_dataset`): blurred frames by split, one shared sharp folder.

    HIDE_dataset/train/NAME.png                                 6,397 blurred training frames
    HIDE_dataset/test/test-close-ups/NAME.png                   the 2,025 test frames, in two subsets
    HIDE_dataset/test/test-long-shot/NAME.png
    HIDE_dataset/GT/NAME.png                                     every sharp frame, train and test, by the same name

A blurred frame pairs with GT/ by file name; a GT frame no blurred frame names is simply not used (GT holds both
splits), never a reject. The test subsets become scenes (`HIDE-close-ups`, `HIDE-long-shot`), so `evaluate`
reports them apart as well as together; training frames have the scene `HIDE`. The source name is `HIDE` unless
`--source` says otherwise. (MPRNet's and Restormer's re-packaged HIDE test set, `test/{input,target}`, is the
`pairs` layout.)
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UsageError
from pipeline.layouts.base import LayoutArgs, Plan, safe_name
from pipeline.layouts.frames import list_frames, match_folders, no_pairs_line, subdirs

GT_DIR = "GT"
SUBSET_PREFIX = "test-"  # test/test-close-ups -> scene HIDE-close-ups
DEFAULT_SOURCE = "HIDE"


def _blur_folders(raw: Path, split: str) -> list[tuple[str, Path]]:
    """[(subset name or "", folder)] of one split: the split folder itself and each subset folder in it."""
    folder = raw / split
    found = [("", folder)] if list_frames(folder) else []
    return found + [(name.removeprefix(SUBSET_PREFIX), folder / name) for name in subdirs(folder)]


def _splits(raw: Path) -> list[str]:
    return [name for name in subdirs(raw) if name != GT_DIR]


class HideLayout:
    name = "hide"
    expected = "hide: GT/NAME.png beside train/NAME.png and test/{test-close-ups,test-long-shot}/NAME.png (HIDE_dataset)"

    def detect(self, raw: Path) -> str | None:
        if not (raw / GT_DIR).is_dir():
            return None
        splits = _splits(raw)
        return f"{GT_DIR}/ + {{{','.join(splits)}}}/" if splits else None

    def plan(self, args: LayoutArgs) -> Plan:
        raw = Path(args.raw).absolute()
        if not (raw / GT_DIR).is_dir():
            raise UsageError(f"--raw {args.raw}: no {GT_DIR}/ folder; expected {self.expected}")
        splits = _splits(raw)
        if args.split:
            if args.split not in splits:
                raise UsageError(f"--split {args.split}: not in {args.raw} (splits: {', '.join(splits)})")
            splits = [args.split]
        for split in splits:
            safe_name(split, f"split folder {raw / split}:")
        source = safe_name(args.source, "--source") if args.source else DEFAULT_SOURCE
        plan = Plan(
            raw=raw,
            layout=self.name,
            source=source,
            blur=None,
            splits=tuple(splits),
            whole_source=not args.split,
            roots=[raw],
        )
        sharp = list_frames(raw / GT_DIR)
        for split in splits:
            for subset, folder in _blur_folders(raw, split):
                scene = f"{source}-{safe_name(subset, f'subset folder {folder}:')}" if subset else source
                pairs, rejects = match_folders(folder, raw / GT_DIR, split, scene, source, split, sharp)
                plan.pairs.extend(pairs)
                plan.rejects.extend(rejects)
                plan.folders.append(folder)
        plan.folders.append(raw / GT_DIR)
        return plan

    def no_pairs_message(self, args: LayoutArgs, plan: Plan) -> str:
        return no_pairs_line(plan.folders, plan.rejects, f"blurred frames pair with {GT_DIR}/ by file name")


LAYOUT = HideLayout()
