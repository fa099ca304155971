"""What an organized dir holds once one source's plan is applied to it: several datasets can share one OUT.

OUT's manifest may already list other sources (GOPRO_Large, then RealBlur_J): organizing a source replaces only
its own rows, for every split it has (gopro, pairs with split folders) or for the one split it was given (a list,
a `--split`), and keeps the rest. Two sources may not claim one output name; a manifest written before sources
were recorded belongs to the gopro layout (the only one there was) and is adopted by a gopro run.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline import manifest
from pipeline.errors import UsageError
from pipeline.layouts.base import Pair as RawPair
from pipeline.layouts.base import Plan, Reject


@dataclass(frozen=True)
class Merge:
    kept: list[manifest.Pair]  # rows of other sources (or of this source's other splits) that stay
    replaced: list[manifest.Pair]  # this source's rows the run replaces
    kept_rejects: list[dict[str, Any]]
    splits: frozenset[str]  # every split OUT lists before or after: where organize writes and cleans

    def other_sources(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.kept:
            counts[row.source or "?"] = counts.get(row.source or "?", 0) + 1
        return dict(sorted(counts.items()))


def _owned(plan: Plan, source: str | None, split: str | None) -> bool:
    """Whether a row (or reject) of `source` in `split` is this run's to replace."""
    mine = source == plan.source or (source is None and plan.layout == "gopro")
    return mine and (plan.whole_source or split in plan.splits)


def manifest_row(pair: RawPair, blur: str | None) -> manifest.Pair:
    return manifest.Pair(
        split=pair.split,
        scene=pair.scene,
        frame=pair.frame,
        a=f"{pair.split}/A/{pair.out_name('A')}",
        b=f"{pair.split}/B/{pair.out_name('B')}",
        width=pair.width,
        height=pair.height,
        blur=blur,
        source=pair.source,
    )


def reject_row(reject: Reject, source: str) -> dict[str, Any]:
    return {**asdict(reject), "source": source}


def _stem(path: str) -> tuple[str, str]:
    split = path.split("/", 1)[0]
    return split, os.path.splitext(path.rsplit("/", 1)[-1])[0]


def merge(out: Path, plan: Plan) -> Merge:
    """Split OUT's current manifest and rejects into what this run keeps and replaces; UsageError when the plan
    would take another source's output names, or when OUT holds rows of unknown source and the plan is not a
    gopro tree."""
    old = manifest.read_local(out)
    legacy = [row for row in old if row.source is None]
    if legacy and plan.layout != "gopro":
        raise UsageError(
            f"{out / manifest.MANIFEST_FILE}: lists {len(legacy)} pairs organized before sources were recorded; "
            f"organize that dataset again first (gopro-prep organize --raw ... --out {out}), or choose another --out"
        )
    kept = [row for row in old if not _owned(plan, row.source, row.split)]
    replaced = [row for row in old if _owned(plan, row.source, row.split)]
    taken = {_stem(row.a): row for row in kept}
    for pair in plan.pairs:
        other = taken.get((pair.split, pair.stem))
        if other is not None:
            raise UsageError(
                f"{pair.a}: its output name {pair.split}/A/{pair.stem} is taken by source {other.source}'s "
                f"pair {other.scene} {other.frame} in {out}; if it is the same dataset pass --source {other.source}, "
                "else organize it into another --out"
            )
    kept_rejects = [
        row for row in manifest.read_rejects(out) if not _owned(plan, row.get("source"), row.get("split"))
    ]
    splits = {row.split for row in old} | set(plan.splits) | {pair.split for pair in plan.pairs}
    return Merge(kept, replaced, kept_rejects, frozenset(splits))


def check_roots(plan: Plan, out: Path, splits: frozenset[str]) -> None:
    """RAW is never written to: OUT may not lie inside a folder the plan reads, and no folder the plan reads may lie
    inside a split folder of OUT (organize writes and cleans those)."""
    out_r = Path(os.path.realpath(out))
    folders = set(plan.roots) | {Path(p).parent for pair in plan.pairs for p in (pair.a, pair.b)}
    for folder in sorted(folders):
        folder_r = Path(os.path.realpath(folder))
        if out_r == folder_r or folder_r in out_r.parents:
            raise UsageError(
                f"--out {out}: is inside {folder}, which organize reads; RAW is never written to, choose an OUT "
                "outside it"
            )
        for split in sorted(splits):
            if folder_r == out_r / split or out_r / split in folder_r.parents:
                raise UsageError(
                    f"{folder}: is inside --out {out}/{split}, which organize rewrites; move one of them"
                )
