"""The one owner of a shards dir's dataset.json: assembled from the shards' results, written last, read and checked.

    {"format_version", "crop_size", "crops_per_pair", "seed", "encoding", "blur",
     "splits": {SPLIT: {"pairs", "examples", "rejected", "shards": [{"file", "examples"}],
                        "sources": {SOURCE: {"pairs", "examples", "rejected"}}}},
     "source_manifest_sha256", "created", "tool_version"}

Its presence marks a shards dir complete (the shard stage writes it last), and its sha256 is the dataset's
fingerprint in runs and versions. `gopro-prep shard` builds and writes it, `gopro-prep inspect` and training read
it through `read`; no TensorFlow here (training passes its own reader for tf.io.gfile paths).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline import fsio
from pipeline.errors import DataError
from pipeline.records import ENCODINGS

DATASET_FILE = "dataset.json"
COUNTS = ("pairs", "examples", "rejected")


def build(results: Iterable[dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    """dataset.json from the per-shard results (`write_shard`'s dicts): per split and per source the pairs,
    examples and rejects, and the shard list. Counted from the data, not from runner metrics (which some runners,
    Dask's among them, do not report)."""
    splits: dict[str, dict[str, Any]] = {}
    for res in sorted(results, key=lambda r: (r["split"], r["index"])):
        entry = splits.setdefault(res["split"], {"pairs": 0, "examples": 0, "rejected": 0, "shards": []})
        entry["pairs"] += res["pairs"]
        entry["examples"] += res["examples"]
        entry["rejected"] += len(res["rejected"])
        entry["shards"].append({"file": res["file"], "examples": res["examples"]})
        for source, counts in sorted(res.get("sources", {}).items()):
            total = entry.setdefault("sources", {}).setdefault(source, dict.fromkeys(COUNTS, 0))
            for key in COUNTS:
                total[key] += counts[key]
    for entry in splits.values():
        if "sources" in entry:
            entry["sources"] = dict(sorted(entry["sources"].items()))
    return {**base, "splits": splits}


def write(out_dir: str, meta: dict[str, Any]) -> None:
    fsio.write_bytes(fsio.join(out_dir, DATASET_FILE), (json.dumps(meta, indent=2) + "\n").encode())


def _problem(meta: Any) -> str | None:
    """What makes `meta` not a dataset.json, or None."""
    if not isinstance(meta, dict):
        return f"expected a JSON object, got {type(meta).__name__}"
    for key in ("encoding", "crop_size", "crops_per_pair", "splits"):
        if key not in meta:
            return f"missing key {key!r}"
    if meta["encoding"] not in ENCODINGS or not isinstance(meta["crop_size"], int):
        return f"bad encoding {meta['encoding']!r} or crop_size {meta['crop_size']!r}"
    if not isinstance(meta["splits"], dict):
        return "'splits' must map split names to their shard lists"
    for name, split in meta["splits"].items():
        shards = split.get("shards") if isinstance(split, dict) else None
        if not isinstance(shards, list) or not all(
            isinstance(s, dict) and isinstance(s.get("file"), str) and isinstance(s.get("examples"), int)
            for s in shards
        ):
            return f"splits.{name}.shards must be a list of {{file, examples}} entries"
    return None


def parse(raw: bytes, path: str) -> dict[str, Any]:
    """A dataset.json's bytes as a checked dict; DataError naming `path` and the first problem."""
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a valid {DATASET_FILE} (not JSON: {exc})") from None
    problem = _problem(meta)
    if problem:
        raise DataError(f"{path}: not a valid {DATASET_FILE}: {problem}")
    return meta


@dataclass(frozen=True)
class DatasetInfo:
    """dataset.json of a shards dir, with its sha256 (the dataset fingerprint recorded in runs and versions)."""

    root: str
    meta: dict[str, Any]
    sha256: str

    @property
    def encoding(self) -> str:
        return str(self.meta.get("encoding", "png"))

    @property
    def crop_size(self) -> int:
        return int(self.meta["crop_size"])

    @property
    def json_path(self) -> str:
        return fsio.join(self.root, DATASET_FILE)

    def split(self, name: str) -> dict[str, Any]:
        splits = self.meta.get("splits", {})
        if name not in splits:
            have = ", ".join(sorted(splits)) or "none"
            raise DataError(f"{self.json_path}: no split {name!r} (have: {have})")
        return splits[name]

    def files(self, split: str) -> list[str]:
        return [fsio.join(self.root, shard["file"]) for shard in self.split(split).get("shards", [])]

    def examples(self, split: str) -> int:
        return int(self.split(split).get("examples", 0))

    def sources(self, split: str) -> dict[str, dict[str, int]]:
        """Per-source counts of a split ({} for shards made before sources were recorded)."""
        return dict(self.split(split).get("sources", {}))

    def fingerprint(self, split: str = "train") -> dict[str, Any]:
        return {"sha256": self.sha256, "examples": self.examples(split), "path": self.root}


def read(directory: str, reader: Callable[[str], bytes] = fsio.read_bytes) -> DatasetInfo:
    """DIR/dataset.json, checked; DataError when it is missing (an incomplete dir), unreadable or invalid.

    `reader` reads a path's bytes and raises FileNotFoundError for a missing one (default: fsio, i.e. local files
    and Beam FileSystems); training passes a tf.io.gfile reader."""
    path = fsio.join(directory, DATASET_FILE)
    try:
        raw = reader(path)
    except FileNotFoundError:
        raise DataError(
            f"{directory}: no {DATASET_FILE}; not a complete shards dir (run `gopro-prep shard` first)"
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    return DatasetInfo(directory, parse(raw, path), hashlib.sha256(raw).hexdigest())
