"""Writing one shard: decode each pair once, cut paired crops, encode, append tf.train.Examples to a TFRecord file.

Streaming: one pair's frames are in memory at a time. A pair that cannot be used becomes a reject row
(unreadable, size_mismatch, too_small) instead of an error, so one bad file never stops a run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline import dataset_info, fsio
from pipeline.crops import crop_offsets, cut, fits
from pipeline.manifest import Pair
from pipeline.records import CropRecord, encode_image, serialize_example, shard_name, write_record
from pipeline.shard_plan import REJECTED_FILE, reject_row, sort_key

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CropParams:
    """Everything that decides the bytes of a record, besides the pair itself."""

    src: str
    crop_size: int
    crops_per_pair: int
    seed: int
    encoding: str


def decodes_rgb(encoding: str) -> bool:
    """Channel order to decode in so crops need no reordering copy: raw stores RGB, cv2's PNG encoder wants BGR."""
    return encoding == "raw"


def load_pair(pair: Pair, params: CropParams) -> tuple[np.ndarray, np.ndarray] | dict[str, Any]:
    """Decode A and B (channel order: `decodes_rgb`) or return the reject row saying why the pair is unusable."""
    a_path, b_path = fsio.join(params.src, pair.a), fsio.join(params.src, pair.b)
    crop = params.crop_size
    if not fits(pair.height, pair.width, crop):
        return reject_row(pair, a_path, "too_small", f"{pair.width}x{pair.height} frame, {crop}px crop")
    rgb = decodes_rgb(params.encoding)
    a = fsio.read_image(a_path, rgb)
    if a is None:
        return reject_row(pair, a_path, "unreadable", "cannot read or decode image")
    b = fsio.read_image(b_path, rgb)
    if b is None:
        return reject_row(pair, b_path, "unreadable", "cannot read or decode image")
    if a.shape != b.shape:
        detail = f"A is {a.shape[1]}x{a.shape[0]}, B is {b.shape[1]}x{b.shape[0]}"
        return reject_row(pair, b_path, "size_mismatch", detail)
    if a.shape[:2] != (pair.height, pair.width):
        detail = f"manifest says {pair.width}x{pair.height}, file is {a.shape[1]}x{a.shape[0]}"
        return reject_row(pair, a_path, "size_mismatch", detail)
    return a, b


def pair_records(pair: Pair, a: np.ndarray, b: np.ndarray, params: CropParams) -> list[CropRecord]:
    """The `crops_per_pair` records of a pair decoded by `load_pair`: same offsets in A and B, encoded RGB."""
    crop, enc = params.crop_size, params.encoding
    # A BGR view reversed is RGB, and encode_image reverses it back for cv2's PNG encoder: no copy either way.
    step = 1 if decodes_rgb(enc) else -1
    offsets = crop_offsets(
        params.seed, pair.scene, pair.frame, params.crops_per_pair, pair.height, pair.width, crop
    )
    out = []
    for y, x in offsets:
        out.append(
            CropRecord(
                blur=encode_image(cut(a, y, x, crop)[:, :, ::step], enc),
                sharp=encode_image(cut(b, y, x, crop)[:, :, ::step], enc),
                height=crop,
                width=crop,
                y=y,
                x=x,
                scene=pair.scene,
                frame=pair.frame,
                source=pair.source or "",
            )
        )
    return out


def write_shard(
    out_dir: str,
    key: tuple[str, int, int],
    pairs: Iterable[Pair],
    params: CropParams,
    progress: Progress | None = None,
    every_s: float = 10.0,
    make_dir: bool = True,
) -> dict[str, Any]:
    """Write shard `key` = (split, index, count) into `out_dir`; returns its counts and reject rows.

    Pairs are written in sorted (scene, frame) order, so the file's bytes do not depend on how the runner
    delivered them. An empty file is still written when every pair is rejected (dataset.json lists it).
    The counts are also kept per source (`sources`), for dataset.json.
    `make_dir=False` fails instead of creating a missing `out_dir` (see WriteShardFn). Write errors name the file.
    """
    split, index, count = key
    name = shard_name(split, index, count)
    ordered = sorted(pairs, key=sort_key)
    result: dict[str, Any] = {
        "split": split,
        "index": index,
        "count": count,
        "file": name,
        "pairs": 0,
        "examples": 0,
        "bytes": 0,
        "rejected": [],
        "sources": {},
    }
    last = time.monotonic()
    path = fsio.join(out_dir, name)
    with fsio.errors_name(path), fsio.open_write(path, parents=make_dir) as fh:
        for pair in ordered:
            result["pairs"] += 1
            counts = _source_counts(result, pair)
            counts["pairs"] += 1
            loaded = load_pair(pair, params)
            if isinstance(loaded, dict):
                result["rejected"].append(loaded)
                counts["rejected"] += 1
            else:
                for rec in pair_records(pair, *loaded, params):
                    result["bytes"] += write_record(fh, serialize_example(rec))
                    result["examples"] += 1
                    counts["examples"] += 1
            if progress is not None and time.monotonic() - last >= every_s:
                last = time.monotonic()
                progress(name, result["pairs"], len(ordered))
        if not fsio.is_remote(path):  # durable before dataset.json (fsynced too) can mark the dir complete
            fh.flush()
            os.fsync(fh.fileno())
    return result


def _source_counts(result: dict[str, Any], pair: Pair) -> dict[str, int]:
    """The per-source counters of a shard result for `pair` (a throwaway dict for a row without a source)."""
    if pair.source is None:
        return dict.fromkeys(dataset_info.COUNTS, 0)
    return result["sources"].setdefault(pair.source, dict.fromkeys(dataset_info.COUNTS, 0))


def write_metadata(results: list[dict[str, Any]], out_dir: str, base: dict[str, Any]) -> dict[str, Any]:
    """rejected.jsonl, then dataset.json (last: its presence marks the dir complete)."""
    ordered = sorted(results, key=lambda r: (r["split"], r["index"]))
    rejects = [row for res in ordered for row in res["rejected"]]
    fsio.write_bytes(
        fsio.join(out_dir, REJECTED_FILE), "".join(json.dumps(r) + "\n" for r in rejects).encode()
    )
    meta = dataset_info.build(ordered, base)
    dataset_info.write(out_dir, meta)
    return meta
