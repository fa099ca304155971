"""`gopro-prep organize`: GOPRO_Large/{train,test}/SCENE/{blur,blur_gamma,sharp}/F.png -> OUT/{train,test}/{A,B}/.

Plan, then act: `plan()` (pairing.py) lists RAW one scene at a time, pairs blur and sharp frames (PNG or JPEG)
by file name without its suffix (never by position in a listing) and checks each pair cheaply (image header);
`verify_plan()` optionally decodes every image on all cores; `apply()` links the good pairs into OUT under their
source's suffix (never transcoded), writes manifest.jsonl and rejected.jsonl atomically and removes stale
outputs. RAW is only ever read. Rerunning is idempotent; a run holds OUT's lock (outlock.py), so two never write
one OUT at once.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from pipeline.config import OrganizeConfig
from pipeline.console import log, track
from pipeline.errors import DataError, UsageError
from pipeline.fsio import errors_name
from pipeline.imageheader import is_image_name
from pipeline.linking import TMP_MARK, Linker
from pipeline.outlock import OutputLock
from pipeline.pairing import SHARP, SPLITS, Pair, Plan, Reject, plan, scan_scene
from pipeline.raw_survey import no_pairs_message

__all__ = ["Pair", "Plan", "Reject", "apply", "check_out", "plan", "run", "scan_scene", "verify_plan"]


def decode_problems(pair: Pair) -> list[Reject]:
    """Fully decode both images of a pair; a Reject for each that fails or disagrees with its header."""
    import cv2
    import numpy as np

    problems = []
    level = cv2.utils.logging.getLogLevel()
    for path in (pair.a, pair.b):
        try:
            data = np.fromfile(path, dtype=np.uint8)
            cv2.utils.logging.setLogLevel(
                cv2.utils.logging.LOG_LEVEL_ERROR
            )  # a failure becomes a reject instead
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        except (OSError, cv2.error) as exc:
            problems.append(Reject(path, "unreadable", str(exc)))
            continue
        finally:
            cv2.utils.logging.setLogLevel(level)
        if image is None:
            problems.append(Reject(path, "unreadable", "image does not decode (truncated or corrupt)"))
        elif image.shape[:2] != (pair.height, pair.width):
            got = f"{image.shape[1]}x{image.shape[0]}"
            problems.append(
                Reject(path, "unreadable", f"decodes to {got}, header says {pair.width}x{pair.height}")
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


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write JSON lines to a temp name, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}{TMP_MARK}")
    try:
        with errors_name(path), open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def manifest_row(pair: Pair, blur: str) -> dict:
    return {
        "split": pair.split,
        "scene": pair.scene,
        "frame": pair.frame,
        "a": f"{pair.split}/A/{pair.out_name('A')}",
        "b": f"{pair.split}/B/{pair.out_name('B')}",
        "width": pair.width,
        "height": pair.height,
        "blur": blur,
    }


@dataclass(frozen=True)
class ApplyStats:
    written: int
    unchanged: int
    removed: int
    fell_back: bool


def apply(p: Plan, out: Path, link: str) -> ApplyStats:
    """Link every good pair into OUT, write manifest.jsonl and rejected.jsonl, then remove stale outputs."""
    out = Path(out)
    manifest = out / "manifest.jsonl"
    # The manifest goes before the first file in OUT changes and comes back at the end: a run that fails midway
    # (full disk) leaves no manifest describing files it has half replaced.
    linker = Linker(link, before_first_change=lambda: manifest.unlink(missing_ok=True))
    expected: set[str] = set()
    written = unchanged = 0
    for split in {pair.split for pair in p.pairs}:
        for side in ("A", "B"):
            (out / split / side).mkdir(parents=True, exist_ok=True)
    for pair in track(p.pairs, total=len(p.pairs), description=f"organize ({link})"):
        for side, src in (("A", pair.a), ("B", pair.b)):
            rel = f"{pair.split}/{side}/{pair.out_name(side)}"
            expected.add(rel)
            if linker.place(src, out / rel):
                written += 1
            else:
                unchanged += 1
    rows = [manifest_row(pair, p.blur) for pair in p.pairs]
    write_jsonl(manifest, rows)
    write_jsonl(
        out / "rejected.jsonl", [asdict(r) for r in sorted(p.rejects, key=lambda r: (r.path, r.reason))]
    )
    # Stale outputs go only after the new manifest is in place, so no manifest ever names a missing file.
    removed = 0
    for split in SPLITS:
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
    """OUT may not be RAW, inside RAW, or hold RAW inside its A/B folders; RAW is never written to."""
    raw_r, out_r = Path(raw).resolve(), Path(out).resolve()
    if out_r == raw_r or raw_r in out_r.parents:
        raise UsageError(
            f"--out {out}: is inside --raw {raw}; RAW is never written to, choose an OUT outside it"
        )
    if any(out_r / split == raw_r or out_r / split in raw_r.parents for split in SPLITS):
        raise UsageError(f"--raw {raw}: is inside --out {out}/train or /test, which organize rewrites")
    if out_r.exists() and not out_r.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")


def _by_reason(rejects: list[Reject]) -> str:
    counts = Counter(r.reason for r in rejects)
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))


def run(cfg: OrganizeConfig, verify: bool = False, strict: bool = False) -> ApplyStats:
    """The `organize` command: under OUT's lock, plan, optionally verify, then apply (or refuse under --strict)."""
    raw, out = Path(cfg.raw), Path(cfg.out)
    check_out(raw, out)
    with OutputLock(str(out), "organize"):
        return _organize(cfg, raw, out, verify, strict)


def _organize(cfg: OrganizeConfig, raw: Path, out: Path, verify: bool, strict: bool) -> ApplyStats:
    p = plan(raw, cfg.blur)
    if verify:
        p = verify_plan(p)
    if p.rejects and strict:
        for r in p.rejects[:20]:
            log(f"reject: {r.reason}: {r.path} ({r.detail})")
        more = " (first 20 shown)" if len(p.rejects) > 20 else ""
        raise DataError(
            f"{len(p.rejects)} rejected in {raw}: {_by_reason(p.rejects)}{more}; --strict: nothing written to {out}"
        )
    if not p.pairs:
        matched = any(r.reason in ("size_mismatch", "unreadable") for r in p.rejects)
        raise DataError(no_pairs_message(raw, cfg.blur, SHARP, p.scenes, _by_reason(p.rejects), matched))
    stats = apply(p, out, cfg.link)
    per_split = Counter(pair.split for pair in p.pairs)
    splits = " + ".join(f"{per_split[s]} {s}" for s in ("train", "test") if per_split[s])
    link = "hardlink, fell back to copy" if stats.fell_back else cfg.link
    log(f"organized {splits} pairs into {out} (blur: {cfg.blur}, link: {link})")
    log(f"files: {stats.written} written, {stats.unchanged} unchanged, {stats.removed} stale removed")
    if p.rejects:
        log(f"rejected {len(p.rejects)}: {_by_reason(p.rejects)} (see {out / 'rejected.jsonl'})")
    else:
        log("rejected 0")
    return stats
