"""The datasets of bench_quality.py, each built with the tool's own stages: raw tree -> organize -> shard.

- `sample`: `gopro-prep sample` scenes (procedural textures, camera motion, GOPRO's sub-frame averaging); the
  held-out frames are its test scenes.
- `photos`: real photographs bundled with scikit-image, cut into frames and blurred by a linear motion kernel
  (tests/shards_fixture.py's recipe), split BY PHOTO: the held-out photos are never seen in training.
- `photos-256`: the same photographs and held-out frames, with four times the training frames (256 blur kernels
  instead of 64): on `photos` NAFNet's held-out gain stalls from step 500 to 1500 while its training gain doubles,
  and this set asks whether more kernels move it (measured: not for NAFNet, +0.08 dB for DeblurGAN).
Each is written in the GOPRO_Large layout, organized (A/B + manifest, so `trainctl evaluate` scores full
held-out frames) and sharded into TFRecords (train crops for `trainctl fit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from shards_fixture import motion_blur, photo

from pipeline.config import OrganizeConfig, ShardConfig, ShardCounts

# Grey photographs are kept as three equal channels: real edges and textures, just no colour.
TRAIN_PHOTOS = (
    "astronaut.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "ihc.png",
    "camera.png",
    "brick.png",
    "gravel.png",
    "grass.png",
)
HELD_OUT_PHOTOS = ("chelsea.png", "coffee.png")
FRAME = (192, 256)  # height, width of a photo frame: a multiple of every generator's stride
SHARD_CROP = 128  # shard crops; fit cuts its random train crop (96 px) from these
# Full size of each photo set: (frames per training photo, shard crops per frame). Every frame has its own blur
# (length and angle), so `photos` trains on 64 kernels and `photos-256` on 256; both are scored on the same 8
# held-out frames (the held-out photos' frames do not depend on the training count).
PHOTO_SETS = {"photos": (8, 8), "photos-256": (32, 4)}


@dataclass(frozen=True)
class Dataset:
    name: str
    organized: Path
    shards: Path
    train_pairs: int
    held_out_pairs: int


def photo_frames(name: str, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` (blur, sharp) uint8 RGB frames from one photo: a random rescale (0.4-0.7, at least the frame) and
    window each, blurred along a line of 5-11 pixels at a random angle."""
    rng = np.random.default_rng([seed, sum(name.encode())])
    image = photo(name)
    out = []
    for _ in range(count):
        scale = max(FRAME[0] / image.shape[0], FRAME[1] / image.shape[1], rng.uniform(0.4, 0.7))
        scaled = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        top = int(rng.integers(0, scaled.shape[0] - FRAME[0] + 1))
        left = int(rng.integers(0, scaled.shape[1] - FRAME[1] + 1))
        sharp = np.ascontiguousarray(scaled[top : top + FRAME[0], left : left + FRAME[1]])
        out.append((motion_blur(sharp, int(rng.integers(5, 12)), float(rng.uniform(0, 180))), sharp))
    return out


def write_photo_tree(raw: Path, train_frames: int, held_out_frames: int, seed: int) -> None:
    """GOPRO_Large layout: SPLIT/PHOTO/{blur,sharp}/NNNNNN.png, one scene per photo."""
    for split, names, count in (
        ("train", TRAIN_PHOTOS, train_frames),
        ("test", HELD_OUT_PHOTOS, held_out_frames),
    ):
        for name in names:
            scene = raw / split / Path(name).stem.replace("_", "-")
            for sub in ("blur", "sharp"):
                (scene / sub).mkdir(parents=True, exist_ok=True)
            for i, (blur, sharp) in enumerate(photo_frames(name, count, seed)):
                for sub, img in (("blur", blur), ("sharp", sharp)):
                    cv2.imwrite(str(scene / sub / f"{i:06d}.png"), np.ascontiguousarray(img[:, :, ::-1]))


def _organize_and_shard(name: str, root: Path, blur: str, crops_per_pair: int) -> Dataset:
    from pipeline import organize, shard

    organized, shards = root / "organized", root / "shards"
    organize.run(OrganizeConfig(raw=str(root / "raw"), out=str(organized), blur=blur, link="hardlink"))
    meta = shard.run(
        ShardConfig(
            src=str(organized),
            out=str(shards),
            crop_size=SHARD_CROP,
            crops_per_pair=crops_per_pair,
            shards=ShardCounts(train=4, test=1),
            encoding="raw",
        )
    )
    return Dataset(name, organized, shards, meta["splits"]["train"]["pairs"], meta["splits"]["test"]["pairs"])


def build(name: str, root: Path, quick: bool, seed: int = 0) -> Dataset:
    """Dataset `name` (sample | photos) under `root`, reusing it when a previous run finished it."""
    root.mkdir(parents=True, exist_ok=True)
    if (root / "shards" / "dataset.json").exists():
        import json

        meta = json.loads((root / "shards" / "dataset.json").read_text())
        splits = meta["splits"]
        return Dataset(
            name, root / "organized", root / "shards", splits["train"]["pairs"], splits["test"]["pairs"]
        )
    if name == "sample":
        from pipeline.sample import write_sample

        scenes, frames = (4, 4) if quick else (8, 6)  # the last quarter of the scenes is held out
        write_sample(root / "raw", scenes=scenes, frames=frames, size=(320, 180), seed=seed)
        return _organize_and_shard(name, root, "blur_gamma", 4 if quick else 8)
    if name in PHOTO_SETS:
        train_frames, crops_per_pair = (2, 4) if quick else PHOTO_SETS[name]
        write_photo_tree(root / "raw", train_frames, 2 if quick else 4, seed)
        return _organize_and_shard(name, root, "blur", crops_per_pair)
    raise ValueError(f"unknown dataset {name!r} (sample | {' | '.join(PHOTO_SETS)})")
