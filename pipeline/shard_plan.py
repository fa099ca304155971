"""What the shard stage will do: manifest rows in, pairs assigned to shards, dataset.json out.

Pure functions over small rows (never images): the Beam pipeline and the tests call them directly.
Pairs go to shards round-robin in sorted (scene, frame) order, so shard sizes differ by at most one pair and the
same manifest always gives the same shards. A split with fewer pairs than shards gets one shard per pair
(no empty shard files).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline import fsio
from pipeline.crops import fits
from pipeline.errors import DataError, UsageError

MANIFEST_FILE = "manifest.jsonl"
DATASET_FILE = "dataset.json"
REJECTED_FILE = "rejected.jsonl"
_REQUIRED = ("split", "scene", "frame", "a", "b", "width", "height")
_SHARD_FILE = re.compile(r"gopro-[\w.-]+\.tfrecord-\d{5}-of-\d{5}")


@dataclass(frozen=True, order=True)
class Pair:
    """One manifest row: an organized blurred/sharp pair (paths relative to the organized dir)."""

    split: str
    scene: str
    frame: str
    a: str
    b: str
    width: int
    height: int
    blur: str | None = None


@dataclass(frozen=True)
class ManifestSummary:
    """What the main process learns from reading the manifest once: counts, blur source, frame sizes, checksum."""

    path: str
    sha256: str
    pairs: dict[str, int]
    blur: str | list[str] | None
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)  # (width, height) -> pairs


def parse_manifest_line(line: str, where: str) -> Pair:
    """Parse one manifest.jsonl line; DataError naming `where` (file:line) if it is not a valid pair row."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        width, height = int(row["width"]), int(row["height"])
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: width/height must be integers (got {row['width']!r}, {row['height']!r})"
        ) from None
    blur = row.get("blur")
    return Pair(
        split=str(row["split"]),
        scene=str(row["scene"]),
        frame=str(row["frame"]),
        a=str(row["a"]),
        b=str(row["b"]),
        width=width,
        height=height,
        blur=None if blur is None else str(blur),
    )


def summarize_manifest(path: str) -> ManifestSummary:
    """Validate every line of the manifest (streaming) and return per-split counts and its sha256."""
    digest = hashlib.sha256()
    pairs: Counter[str] = Counter()
    blurs: set[str] = set()
    sizes: Counter[tuple[int, int]] = Counter()
    try:
        fh = fsio.open_read(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no manifest (run `gopro-prep organize` first)") from None
    with fh:
        for number, raw in enumerate(fh, start=1):
            digest.update(raw)
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            pair = parse_manifest_line(line, f"{path}:{number}")
            pairs[pair.split] += 1
            sizes[(pair.width, pair.height)] += 1
            if pair.blur is not None:
                blurs.add(pair.blur)
    if not pairs:
        raise DataError(f"{path}: manifest lists no pairs; nothing to shard")
    blur: str | list[str] | None = sorted(blurs) if len(blurs) > 1 else (blurs.pop() if blurs else None)
    return ManifestSummary(
        path=path, sha256=digest.hexdigest(), pairs=dict(sorted(pairs.items())), blur=blur, sizes=dict(sizes)
    )


def check_crop(summary: ManifestSummary, crop: int) -> int:
    """How many pairs are too small for a `crop` x `crop` window; UsageError when that is every pair, before any
    image is read (the manifest holds every frame's size), naming the frame that comes closest."""
    small = sum(n for (width, height), n in summary.sizes.items() if not fits(height, width, crop))
    if summary.sizes and small == sum(summary.sizes.values()):
        width, height = max(summary.sizes, key=lambda s: (min(s), s[0] * s[1]))
        raise UsageError(
            f"--crop {crop} is larger than every frame (largest {width}x{height} in {summary.path}); "
            f"use --crop {min(width, height)} or less"
        )
    return small


def shard_count(split: str, counts: dict[str, int], pairs: int) -> int:
    """Shards for a split: the configured count (1 for a split the config does not name), at most one per pair."""
    return max(1, min(counts.get(split, 1), pairs))


def assign_shards(
    split: str, pairs: Iterable[Pair], counts: dict[str, int]
) -> list[tuple[tuple[str, int, int], Pair]]:
    """Key each pair of one split by its shard (split, index, count): round-robin over sorted (scene, frame)."""
    ordered = sorted(pairs, key=lambda p: (p.scene, p.frame))
    n = shard_count(split, counts, len(ordered))
    return [((split, i % n, n), pair) for i, pair in enumerate(ordered)]


def is_shard_file(name: str) -> bool:
    """TFDS-style shard names as `records.shard_name` makes them."""
    return bool(_SHARD_FILE.fullmatch(name))


def is_shards_dir_entry(name: str) -> bool:
    """Files the shard stage writes into a shards dir (what `--overwrite` may replace)."""
    return name in (DATASET_FILE, REJECTED_FILE) or is_shard_file(name)


def reject_row(pair: Pair, path: str, reason: str, detail: str) -> dict[str, Any]:
    """A rejected.jsonl line: which pair, which file, why (unreadable | size_mismatch | too_small)."""
    return {
        "split": pair.split,
        "scene": pair.scene,
        "frame": pair.frame,
        "path": path,
        "reason": reason,
        "detail": detail,
    }


def dataset_metadata(results: Iterable[dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    """dataset.json from the per-shard results: per split pairs, examples, rejected and the shard list."""
    splits: dict[str, dict[str, Any]] = {}
    for res in sorted(results, key=lambda r: (r["split"], r["index"])):
        entry = splits.setdefault(res["split"], {"pairs": 0, "examples": 0, "rejected": 0, "shards": []})
        entry["pairs"] += res["pairs"]
        entry["examples"] += res["examples"]
        entry["rejected"] += len(res["rejected"])
        entry["shards"].append({"file": res["file"], "examples": res["examples"]})
    return {**base, "splits": splits}
