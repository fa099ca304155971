"""`gopro-prep inspect DIR`: read every record of every shard and check it against dataset.json.

Records are framed with `records.iter_records` (which verifies both CRC32Cs: tfrecord-lite checks none) and
parsed with tfrecord-lite, so no TensorFlow import. Checks: every listed shard exists and reads to the end,
per-shard, per-split and per-source example counts, pairs written = pairs - rejected, examples = pairs
written x crops_per_pair, crop sizes, the first record of each shard decodes to crop_size x crop_size x 3, and no shard
file is left unlisted. Any problem -> a table row naming the file, and exit 1.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import dataset_info, fsio
from pipeline.console import log
from pipeline.dataset_info import DATASET_FILE
from pipeline.errors import DataError
from pipeline.records import CropRecord, decode_image, iter_records, record_from_lite
from pipeline.shard_plan import REJECTED_FILE, is_shard_file


@dataclass
class ShardScan:
    """What reading one shard found."""

    split: str
    file: str
    expected: int
    examples: int = 0
    bytes: int = 0
    pairs: set[tuple[str, str, str]] = field(default_factory=set)  # (source, scene, frame)
    per_source: dict[str, int] = field(default_factory=dict)  # examples per source
    problem: str | None = None
    samples: list[CropRecord] = field(default_factory=list)


def read_metadata(directory: str) -> dict[str, Any]:
    return dataset_info.read(directory).meta


def rejected_per_split(directory: str) -> dict[str, int] | None:
    """Lines of rejected.jsonl per split; None if the file is absent."""
    path = fsio.join(directory, REJECTED_FILE)
    if not fsio.exists(path):
        return None
    counts: dict[str, int] = {}
    for number, line in enumerate(fsio.read_bytes(path).decode("utf-8", "replace").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
            split = row.get("split", "?") if isinstance(row, dict) else "?"
            counts[split] = counts.get(split, 0) + 1
    return counts


def check_record(rec: CropRecord, meta: dict[str, Any], decode: bool) -> None:
    """ValueError if a record does not fit dataset.json (crop size; with `decode`, the decoded shapes)."""
    crop = meta["crop_size"]
    if (rec.height, rec.width) != (crop, crop):
        raise ValueError(f"crop is {rec.width}x{rec.height}, dataset.json says {crop}")
    if rec.y < 0 or rec.x < 0:
        raise ValueError(f"negative offset ({rec.y}, {rec.x})")
    if decode or meta["encoding"] == "raw":  # raw: decoding is a length check, cheap enough for every record
        for data in (rec.blur, rec.sharp):
            decode_image(data, meta["encoding"], rec.height, rec.width)


def scan_shard(path: str, scan: ShardScan, meta: dict[str, Any], sample_at: set[int]) -> ShardScan:
    """Read every record of one shard (CRC-checked), parse with tfrecord-lite, keep the sampled records."""
    import tfrecord_lite

    index = 0
    try:
        with fsio.open_read(path) as fh:
            for index, payload in enumerate(iter_records(fh, verify=True)):
                rec = record_from_lite(tfrecord_lite.decode_example(payload))
                check_record(rec, meta, decode=index == 0 or index in sample_at)
                scan.examples += 1
                scan.bytes += len(payload) + 16
                scan.pairs.add((rec.source, rec.scene, rec.frame))
                scan.per_source[rec.source] = scan.per_source.get(rec.source, 0) + 1
                if index in sample_at:
                    scan.samples.append(rec)
    except FileNotFoundError:
        scan.problem = "missing file"
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:  # CRC/truncation, bad feature, unparsable
        where = "" if str(exc).startswith("record ") else f"record {scan.examples}: "
        scan.problem = f"{where}{exc}".strip("'\"")
    if scan.problem is None and scan.examples != scan.expected:
        scan.problem = f"{scan.examples} records, dataset.json says {scan.expected}"
    return scan


def _sample_positions(meta: dict[str, Any], samples: int) -> dict[str, set[int]]:
    """Record positions to dump, spread evenly over all listed records: file name -> record indices."""
    listed = [(s["file"], s["examples"]) for v in meta["splits"].values() for s in v["shards"]]
    total = sum(n for _, n in listed)
    wanted = sorted({i * total // samples for i in range(samples)}) if samples and total else []
    out: dict[str, set[int]] = {}
    start = 0
    for name, n in listed:
        out[name] = {g - start for g in wanted if start <= g < start + n}
        start += n
    return out


def split_problems(
    split: str, entry: dict[str, Any], scans: list[ShardScan], meta: dict, rejects: dict | None
) -> list[str]:
    """Per-split checks: dataset.json agrees with itself, the records, and rejected.jsonl."""
    problems = []
    listed = sum(s.expected for s in scans)
    if listed != entry.get("examples"):
        problems.append(
            f"{split}: dataset.json says {entry.get('examples')} examples, its shards list {listed}"
        )
    written = entry.get("pairs", 0) - entry.get("rejected", 0)
    if scans and all(s.problem is None for s in scans):
        pairs = len(set().union(*(s.pairs for s in scans)))
        examples = sum(s.examples for s in scans)
        if pairs != written:
            problems.append(f"{split}: records come from {pairs} pairs, dataset.json says {written} written")
        elif examples != pairs * meta["crops_per_pair"]:
            problems.append(f"{split}: {examples} records for {pairs} pairs x {meta['crops_per_pair']} crops")
    sources = entry.get("sources")
    if isinstance(sources, dict) and scans and all(s.problem is None for s in scans):
        for name, counts in sorted(sources.items()):
            got = sum(s.per_source.get(name, 0) for s in scans)
            if got != counts.get("examples"):
                problems.append(
                    f"{split}: {got} records of source {name}, dataset.json says {counts.get('examples')}"
                )
        if sum(c.get("pairs", 0) for c in sources.values()) != entry.get("pairs"):
            problems.append(f"{split}: its sources' pairs do not add up to its {entry.get('pairs')} pairs")
    if rejects is not None and rejects.get(split, 0) != entry.get("rejected", 0):
        problems.append(
            f"{split}: {REJECTED_FILE} lists {rejects.get(split, 0)}, dataset.json says {entry.get('rejected')}"
        )
    return problems


def print_table(directory: str, meta: dict[str, Any], scans: list[ShardScan]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{directory}  ({meta['encoding']}, crop {meta['crop_size']}, {meta['crops_per_pair']}/pair)"
    )
    for col, justify in (("split", "left"), ("shard", "left"), ("examples", "right"), ("pairs", "right"),
                         ("MB", "right"), ("status", "left")):  # fmt: skip
        table.add_column(col, justify=justify)
    for s in scans:
        status = "ok" if s.problem is None else f"[red]{s.problem}[/red]"
        table.add_row(
            s.split, s.file, f"{s.examples}/{s.expected}", str(len(s.pairs)), f"{s.bytes / 1e6:.1f}", status
        )
    Console(file=sys.stdout, width=160).print(table)


def dump_samples(scans: list[ShardScan], meta: dict[str, Any], out: Path) -> int:
    """Write each sampled record as a blur | sharp PNG; returns how many."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for scan in scans:
        for rec in scan.samples:
            blur = decode_image(rec.blur, meta["encoding"], rec.height, rec.width)
            sharp = decode_image(rec.sharp, meta["encoding"], rec.height, rec.width)
            name = f"{scan.split}_{rec.scene}_{rec.frame}_y{rec.y}_x{rec.x}.png"
            if not cv2.imwrite(str(out / name), np.concatenate([blur, sharp], axis=1)[:, :, ::-1]):
                raise DataError(f"{out / name}: cannot write PNG")
            written += 1
    return written


def run(directory: str, dump: Path | None = None, samples: int = 8) -> list[ShardScan]:
    """Check a published shards dir; DataError (exit 1) naming every bad file or count."""
    meta = read_metadata(directory)
    positions = _sample_positions(meta, samples if dump is not None else 0)
    rejects = rejected_per_split(directory)
    scans: list[ShardScan] = []
    problems: list[str] = []
    for split, entry in sorted(meta["splits"].items()):
        split_scans = []
        for shard in entry.get("shards", []):
            scan = ShardScan(split=split, file=shard["file"], expected=shard["examples"])
            scan_shard(fsio.join(directory, shard["file"]), scan, meta, positions.get(shard["file"], set()))
            if scan.problem:
                problems.append(f"{shard['file']}: {scan.problem}")
            split_scans.append(scan)
        problems += split_problems(split, entry, split_scans, meta, rejects)
        scans += split_scans
    listed = {s.file for s in scans}
    problems += [f"{n}: shard file not listed in {DATASET_FILE}" for n in fsio.listdir(directory)
                 if is_shard_file(n) and n not in listed]  # fmt: skip
    print_table(directory, meta, scans)
    total = sum(s.examples for s in scans)
    if dump is not None:
        log(f"inspect: wrote {dump_samples(scans, meta, dump)} blur|sharp samples to {dump}")
    if problems:
        raise DataError(f"{directory}: {len(problems)} problem(s): " + "; ".join(problems))
    log(f"inspect: {len(scans)} shards, {total} records: all match {DATASET_FILE}")
    return scans
