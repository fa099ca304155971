"""A small shards dir for training tests and benchmarks, written with the real record schema.

Frames are windows of the photographs bundled with scikit-image (real textures and edges), blurred by a linear
motion kernel (the average of shifted copies, like GOPRO's average of sub-frames). Crops are encoded with
`pipeline.records` and framed as TFRecords exactly as the shard stage does, then dataset.json is written last.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from pipeline import records

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "ihc.png")


def photo(name: str) -> np.ndarray:
    """A photograph bundled with scikit-image as uint8 RGB (grey ones as three equal channels)."""
    spec = importlib.util.find_spec("skimage")
    assert spec and spec.submodule_search_locations, "scikit-image is a dev dependency"
    path = Path(spec.submodule_search_locations[0]) / "data" / name
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey photos come back as 3 equal channels
    assert bgr is not None, path
    return bgr[:, :, ::-1]


def motion_blur(sharp: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Average of `length` copies shifted along a line at `angle` degrees (uint8 in, uint8 out)."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= kernel.sum()
    return cv2.filter2D(sharp, -1, kernel, borderType=cv2.BORDER_REFLECT)


def make_pairs(count: int, size: tuple[int, int], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` (blur, sharp) uint8 RGB frames of (height, width) `size` cut from the bundled photos."""
    rng = np.random.default_rng([seed, 4])
    photos = [photo(name) for name in PHOTOS]
    out = []
    for i in range(count):
        image = photos[i % len(photos)]
        scale = max(size[0] / image.shape[0], size[1] / image.shape[1], rng.uniform(0.4, 0.7))
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        top = int(rng.integers(0, image.shape[0] - size[0] + 1))
        left = int(rng.integers(0, image.shape[1] - size[1] + 1))
        sharp = np.ascontiguousarray(image[top : top + size[0], left : left + size[1]])
        blur = motion_blur(sharp, int(rng.integers(5, 12)), float(rng.uniform(0, 180)))
        out.append((blur, sharp))
    return out


def write_shards(
    out: Path,
    pairs: int = 8,
    crop_size: int = 48,
    crops_per_pair: int = 2,
    shards: dict[str, int] | None = None,
    frame_size: tuple[int, int] = (96, 128),
    encoding: str = "png",
    seed: int = 0,
    make_blur: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Path:
    """Write `out/gopro-SPLIT.tfrecord-*` and `out/dataset.json`; returns `out`. Splits get disjoint frames.

    `make_blur(sharp)` replaces the motion blur (tests use exact relations such as `255 - sharp`).
    """
    shards = shards or {"train": 2, "test": 1}
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 5])
    frames = make_pairs(pairs * len(shards), frame_size, seed)
    splits = {}
    for s_index, (split, count) in enumerate(shards.items()):
        handles = [(out / records.shard_name(split, i, count)).open("wb") for i in range(count)]
        per_shard = [0] * count
        n = 0
        for p in range(pairs):
            blur, sharp = frames[s_index * pairs + p]
            if make_blur is not None:
                blur = make_blur(sharp)
            for _ in range(crops_per_pair):
                y = int(rng.integers(0, frame_size[0] - crop_size + 1))
                x = int(rng.integers(0, frame_size[1] - crop_size + 1))
                rec = records.CropRecord(
                    blur=records.encode_image(blur[y : y + crop_size, x : x + crop_size], encoding),
                    sharp=records.encode_image(sharp[y : y + crop_size, x : x + crop_size], encoding),
                    height=crop_size,
                    width=crop_size,
                    y=y,
                    x=x,
                    scene=f"PHOTO{p % len(PHOTOS):04d}",
                    frame=f"{p:06d}",
                )
                records.write_record(handles[n % count], records.serialize_example(rec))
                per_shard[n % count] += 1
                n += 1
        for fh in handles:
            fh.close()
        splits[split] = {
            "pairs": pairs,
            "examples": n,
            "rejected": 0,
            "shards": [
                {"file": records.shard_name(split, i, count), "examples": per_shard[i]} for i in range(count)
            ],
        }
    return _write_dataset_json(out, crop_size, crops_per_pair, seed, encoding, splits)


def write_pair_shards(
    out: Path, files: list[list[tuple[np.ndarray, np.ndarray]]], split: str = "train", encoding: str = "png"
) -> Path:
    """Write exactly the given (blur, sharp) uint8 crops of one size, one list per `split` shard file, in order,
    then dataset.json: for tests that need to know which record lives in which file."""
    out.mkdir(parents=True, exist_ok=True)
    crop_size = files[0][0][0].shape[0]
    for i, pairs in enumerate(files):
        with (out / records.shard_name(split, i, len(files))).open("wb") as fh:
            for n, (blur, sharp) in enumerate(pairs):
                assert blur.shape == sharp.shape == (crop_size, crop_size, 3)
                rec = records.CropRecord(
                    blur=records.encode_image(blur, encoding),
                    sharp=records.encode_image(sharp, encoding),
                    height=crop_size,
                    width=crop_size,
                    y=0,
                    x=0,
                    scene=f"FILE{i:04d}",
                    frame=f"{n:06d}",
                )
                records.write_record(fh, records.serialize_example(rec))
    shards = [
        {"file": records.shard_name(split, i, len(files)), "examples": len(p)} for i, p in enumerate(files)
    ]
    examples = sum(len(p) for p in files)
    splits = {split: {"pairs": examples, "examples": examples, "rejected": 0, "shards": shards}}
    return _write_dataset_json(out, crop_size, 1, 0, encoding, splits)


def _write_dataset_json(
    out: Path, crop_size: int, crops_per_pair: int, seed: int, encoding: str, splits: dict
) -> Path:
    meta = {
        "format_version": records.FORMAT_VERSION,
        "crop_size": crop_size,
        "crops_per_pair": crops_per_pair,
        "seed": seed,
        "encoding": encoding,
        "splits": splits,
        "source_manifest_sha256": hashlib.sha256(b"shards_fixture").hexdigest(),
        "created": "2024-01-01T00:00:00Z",
        "tool_version": "test",
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    return out
