"""`gopro-prep organize`: a raw dataset (GOPRO_Large, paired folders, a pair list) -> OUT/SPLIT/{A,B}/ + manifest.

Plan, then act: `plan()` has the layout (pipeline/layouts/: gopro, pairs, list; detected unless `--layout` names
one) list RAW and pair blurred and sharp frames (PNG or JPEG, by name, never by position in a listing), each pair
checked cheaply from its image headers; `verify_plan()` optionally decodes every image on all cores; `apply()`
links the good pairs into OUT under their source's suffix (never transcoded), writes manifest.jsonl and
rejected.jsonl atomically and removes stale outputs. Several datasets may share one OUT: a run replaces only its
own source's rows (out_merge.py). RAW is only ever read. Rerunning is idempotent; a run holds OUT's lock
(pipeline/dirlock.py), so two never write one OUT at once.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline import manifest
from pipeline.config import OrganizeConfig
from pipeline.console import log, track
from pipeline.dirlock import OutputLock
from pipeline.errors import DataError, UsageError
from pipeline.imageheader import is_image_name
from pipeline.layouts import LAYOUTS, LayoutArgs, Pair, Plan, Reject, choose
from pipeline.layouts.base import reject_summary
from pipeline.linking import Linker
from pipeline.manifest import TMP_MARK
from pipeline.out_merge import Merge, check_roots, manifest_row, merge, reject_row

__all__ = ["Pair", "Plan", "Reject", "apply", "check_out", "plan", "plan_args", "run", "verify_plan"]


def plan(
    raw: Path,
    blur: str = "blur_gamma",
    layout: str = "auto",
    *,
    blur_dir: str | None = None,
    sharp_dir: str | None = None,
    list_file: str | None = None,
    split: str | None = None,
    source: str | None = None,
) -> Plan:
    """Scan RAW with its layout into pairs and rejects, sorted by (split, scene, frame); nothing is written.
    A RAW that fits no layout (or several, with `auto`) is a UsageError naming what was expected."""
    return plan_args(LayoutArgs(Path(raw), blur, blur_dir, sharp_dir, list_file, split, source), layout)


def plan_args(args: LayoutArgs, layout: str = "auto") -> Plan:
    """`plan` for arguments already gathered."""
    chosen, detected = choose(layout, args)
    result = chosen.plan(args)
    result.detected = detected
    result.pairs.sort(key=lambda p: (p.split, p.scene, p.frame))
    _refuse_name_collisions(result.pairs)
    return result


def _refuse_name_collisions(pairs: list[Pair]) -> None:
    """SCENE_FRAME must be unique per split: scene `a_b` frame `1` and scene `a` frame `b_1` would share a file
    (or, with other suffixes, a name that only the suffix tells apart)."""
    seen: dict[tuple[str, str], Pair] = {}
    for pair in pairs:
        other = seen.setdefault((pair.split, pair.stem), pair)
        if other is not pair:
            raise UsageError(
                f"{pair.a}: its output name {pair.split}/A/{pair.out_name('A')} is also that of {other.a}; "
                "rename one of the scenes or frames"
            )


def decode_problems(pair: Pair) -> list[Reject]:
    """Fully decode both images of a pair; a Reject for each that fails or disagrees with its header."""
    import cv2
    import numpy as np

    from pipeline.native_stderr import libpng_quieted

    problems = []
    level = cv2.utils.logging.getLogLevel()
    for path in (pair.a, pair.b):
        try:
            data = np.fromfile(path, dtype=np.uint8)
            cv2.utils.logging.setLogLevel(
                cv2.utils.logging.LOG_LEVEL_ERROR
            )  # a failure becomes a reject instead
            with libpng_quieted():  # the reject row says it; libpng's own `libpng error:` line is noise
                image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        except (OSError, cv2.error) as exc:
            problems.append(Reject(path, "unreadable", str(exc), pair.split))
            continue
        finally:
            cv2.utils.logging.setLogLevel(level)
        if image is None:
            problems.append(
                Reject(path, "unreadable", "image does not decode (truncated or corrupt)", pair.split)
            )
        elif image.shape[:2] != (pair.height, pair.width):
            got = f"{image.shape[1]}x{image.shape[0]}"
            problems.append(
                Reject(
                    path,
                    "unreadable",
                    f"decodes to {got}, header says {pair.width}x{pair.height}",
                    pair.split,
                )
            )
    return problems


def verify_plan(p: Plan, workers: int | None = None) -> Plan:
    """Decode every image of every pair on all cores; pairs with a bad image move to the rejects."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if workers == 1 or len(p.pairs) < 16:
        results = map(decode_problems, p.pairs)
        return _split_verified(p, track(results, total=len(p.pairs), description="verify"))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: workers start clean even when the caller already holds threads (OpenCV, TensorFlow, tests).
    context = multiprocessing.get_context("forkserver")
    chunk = max(1, min(64, len(p.pairs) // (workers * 8)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        results = pool.map(decode_problems, p.pairs, chunksize=chunk)
        return _split_verified(p, track(results, total=len(p.pairs), description="verify"))


def _split_verified(p: Plan, results) -> Plan:
    good, rejects = [], list(p.rejects)
    for pair, problems in zip(p.pairs, results, strict=True):
        if problems:
            rejects.extend(problems)
        else:
            good.append(pair)
    return replace(p, pairs=good, rejects=rejects)


@dataclass(frozen=True)
class ApplyStats:
    written: int
    unchanged: int
    removed: int
    fell_back: bool


def apply(p: Plan, out: Path, link: str, merged: Merge | None = None) -> ApplyStats:
    """Link every good pair into OUT, write manifest.jsonl and rejected.jsonl (keeping other sources' rows), then
    remove stale outputs in every split OUT lists."""
    out = Path(out)
    merged = merged or merge(out, p)

    def before_first_change() -> None:
        # The manifest is cut down to the rows this run does not touch before the first file in OUT changes and is
        # complete again at the end: a run that fails midway (full disk) leaves no manifest naming a file it has
        # half replaced, and the other sources' rows are never lost.
        if merged.kept:
            manifest.write_manifest(out, sorted(merged.kept, key=manifest.Pair.order))
        else:
            (out / manifest.MANIFEST_FILE).unlink(missing_ok=True)

    linker = Linker(link, before_first_change=before_first_change)
    written = unchanged = 0
    for split in {pair.split for pair in p.pairs}:
        for side in ("A", "B"):
            (out / split / side).mkdir(parents=True, exist_ok=True)
    for pair in track(p.pairs, total=len(p.pairs), description=f"organize ({link})"):
        for side, src in (("A", pair.a), ("B", pair.b)):
            if linker.place(src, out / pair.split / side / pair.out_name(side)):
                written += 1
            else:
                unchanged += 1
    rows = sorted(merged.kept + [manifest_row(pair, p.blur) for pair in p.pairs], key=manifest.Pair.order)
    manifest.write_manifest(out, rows)
    rejects = merged.kept_rejects + [reject_row(r, p.source) for r in p.rejects]
    manifest.write_jsonl(
        out / manifest.REJECTED_FILE, sorted(rejects, key=lambda r: (r["path"], r["reason"]))
    )
    # Stale outputs go only after the new manifest is in place, so no manifest ever names a missing file.
    expected = {path for row in rows for path in (row.a, row.b)}
    removed = 0
    for split in sorted(merged.splits):
        for side in ("A", "B"):
            folder = out / split / side
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                stale = [
                    e.path
                    for e in entries
                    if f"{split}/{side}/{e.name}" not in expected
                    and (is_image_name(e.name) or e.name.endswith(TMP_MARK))
                    and not e.is_dir(follow_symlinks=False)
                ]
            for path in stale:
                os.unlink(path)  # unlinks the link or file in OUT, never its target in RAW
                removed += 1
    return ApplyStats(written, unchanged, removed, linker.fell_back)


def check_out(raw: Path, out: Path) -> None:
    """OUT may not be RAW or inside it (RAW is never written to); OUT must be a directory if it exists. Where RAW
    sits inside OUT is checked once the plan says which splits organize writes (out_merge.check_roots)."""
    raw_r, out_r = Path(raw).resolve(), Path(out).resolve()
    if out_r == raw_r or raw_r in out_r.parents:
        raise UsageError(
            f"--out {out}: is inside --raw {raw}; RAW is never written to, choose an OUT outside it"
        )
    if out_r.exists() and not out_r.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")


def run(cfg: OrganizeConfig, verify: bool = False, strict: bool = False) -> ApplyStats:
    """The `organize` command: under OUT's lock, plan, optionally verify, then apply (or refuse under --strict)."""
    raw, out = Path(cfg.raw), Path(cfg.out)
    if raw.exists():
        check_out(raw, out)
    with OutputLock(str(out), "organize"):
        return _organize(cfg, raw, out, verify, strict)


def _split_order(split: str) -> tuple[int, str]:
    return ({"train": 0, "val": 1, "test": 2}.get(split, 3), split)


def _organize(cfg: OrganizeConfig, raw: Path, out: Path, verify: bool, strict: bool) -> ApplyStats:
    args = LayoutArgs(raw, cfg.blur, cfg.blur_dir, cfg.sharp_dir, cfg.list_file, cfg.split, cfg.source)
    p = plan_args(args, cfg.layout)
    if p.detected:
        log(f"layout: {p.layout} (detected: {p.detected}); source: {p.source}")
    merged = merge(out, p)
    check_roots(p, out, merged.splits)
    if verify:
        p = verify_plan(p)
    if p.rejects and strict:
        for r in p.rejects[:20]:
            log(f"reject: {r.reason}: {r.path} ({r.detail})")
        more = " (first 20 shown)" if len(p.rejects) > 20 else ""
        raise DataError(
            f"{len(p.rejects)} rejected in {raw}: {reject_summary(p.rejects)}{more}; --strict: nothing written to {out}"
        )
    if not p.pairs:
        raise DataError(LAYOUTS[p.layout].no_pairs_message(args, p))
    stats = apply(p, out, cfg.link, merged)
    per_split = Counter(pair.split for pair in p.pairs)
    splits = " + ".join(f"{per_split[s]} {s}" for s in sorted(per_split, key=_split_order))
    link = "hardlink, fell back to copy" if stats.fell_back else cfg.link
    how = f"blur: {p.blur}, link: {link}" if p.blur else f"layout {p.layout}, link: {link}"
    log(f"organized {splits} pairs of {p.source} into {out} ({how})")
    now = sorted((manifest_row(pair, p.blur) for pair in p.pairs), key=manifest.Pair.order)
    if merged.replaced and sorted(merged.replaced, key=manifest.Pair.order) != now:
        log(f"replaced {p.source}'s previous {len(merged.replaced)} pairs in {', '.join(p.splits)}")
    others = merged.other_sources()
    if others:
        listing = ", ".join(f"{name} {n}" for name, n in others.items())
        log(f"{out} also holds {sum(others.values())} pairs of other sources ({listing})")
    log(f"files: {stats.written} written, {stats.unchanged} unchanged, {stats.removed} stale removed")
    if p.rejects:
        log(f"rejected {len(p.rejects)}: {reject_summary(p.rejects)} (see {out / manifest.REJECTED_FILE})")
    else:
        log("rejected 0")
    return stats
