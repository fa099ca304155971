"""What the shard stage will do: manifest rows in, pairs assigned to shards, rejects named.

Pure functions over small rows (never images): the Beam pipeline and the tests call them directly.
Pairs go to shards round-robin in sorted (scene, frame) order, so shard sizes differ by at most one pair and the
same manifest always gives the same shards. A split with fewer pairs than shards gets one shard per pair
(no empty shard files).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pipeline.crops import fits
from pipeline.dataset_info import DATASET_FILE
from pipeline.errors import UsageError
from pipeline.manifest import ManifestSummary, Pair

REJECTED_FILE = "rejected.jsonl"
_SHARD_FILE = re.compile(r"gopro-[\w.-]+\.tfrecord-\d{5}-of-\d{5}")


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


def sort_key(pair: Pair) -> tuple[str, str, str]:
    """The order pairs take within a split: by scene and frame (unique within a split of an organized dir)."""
    return (pair.scene, pair.frame, pair.source or "")


def assign_shards(
    split: str, pairs: Iterable[Pair], counts: dict[str, int]
) -> list[tuple[tuple[str, int, int], Pair]]:
    """Key each pair of one split by its shard (split, index, count): round-robin over sorted (scene, frame)."""
    ordered = sorted(pairs, key=sort_key)
    n = shard_count(split, counts, len(ordered))
    return [((split, i % n, n), pair) for i, pair in enumerate(ordered)]


def is_shard_file(name: str) -> bool:
    """TFDS-style shard names as `records.shard_name` makes them."""
    return bool(_SHARD_FILE.fullmatch(name))


def is_shards_dir_entry(name: str) -> bool:
    """Files the shard stage writes into a shards dir (what `--overwrite` may replace)."""
    return name in (DATASET_FILE, REJECTED_FILE) or is_shard_file(name)


def reject_row(pair: Pair, path: str, reason: str, detail: str) -> dict[str, Any]:
    """A rejected.jsonl line: which pair (and source, when the manifest names it), which file, why
    (unreadable | size_mismatch | too_small)."""
    row = {"split": pair.split, "scene": pair.scene, "frame": pair.frame, "path": path, "reason": reason}
    row["detail"] = detail
    if pair.source is not None:
        row["source"] = pair.source
    return row
