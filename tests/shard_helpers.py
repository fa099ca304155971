"""Helpers shared by the shard and inspect tests: small configs, reading shards back, editing organized dirs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import tfrecord_lite

from pipeline.config import ShardConfig
from pipeline.records import CropRecord, iter_records, record_from_lite

# One in-process worker: the pipeline graph is the same, without starting worker processes for every test.
IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def shard_cfg(src: Path, out: Path, **overrides) -> ShardConfig:
    values = dict(
        src=str(src),
        out=str(out),
        crop_size=32,
        crops_per_pair=3,
        shards={"train": 3, "test": 2},
        encoding="png",
    )
    return ShardConfig(**{**values, **overrides})


def read_shard(path: Path) -> list[CropRecord]:
    """Every record of a shard file, CRC-checked, parsed with tfrecord-lite."""
    with open(path, "rb") as fh:
        return [record_from_lite(tfrecord_lite.decode_example(p)) for p in iter_records(fh)]


def read_dataset(out: Path) -> tuple[dict, dict[str, list[CropRecord]]]:
    """dataset.json and the records of each listed shard (file name -> records)."""
    meta = json.loads((out / "dataset.json").read_text())
    files = [s["file"] for v in meta["splits"].values() for s in v["shards"]]
    return meta, {f: read_shard(out / f) for f in files}


def read_rejected(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines() if line.strip()]


def manifest_rows(organized: Path) -> list[dict]:
    return [
        json.loads(line) for line in (organized / "manifest.jsonl").read_text().splitlines() if line.strip()
    ]


def write_manifest(organized: Path, rows: list[dict]) -> None:
    (organized / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def copy_organized(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return bgr[:, :, ::-1]
