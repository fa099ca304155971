"""Tiny trees in the layouts other datasets ship, with real blur: for the organize, shard and evaluate tests.

- `mprnet_tree`: DATASET/SPLIT/{input,target}/NAME.png (MPRNet's GoPro, HIDE, RealBlur_J/R test-set downloads);
- `restormer_flat`: test/DATASET/{input,target}/NAME.png (Restormer's `Datasets/test/HIDE`: no split folder);
- `realblur_tree`: RealBlur's download, `RealBlur-J_ECC_IMCORR_centroid_itensity_ref/sceneNNN/{gt,blur}/
  {gt,blur}_K.png` with `RealBlur_J_{train,test}_list.txt` in the root, one `gt_path blur_path` per line.
Frames are smooth random textures (sharp) and a 5-pixel box blur of them, a few pixels wide, seeded per name.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

SIZE = (64, 48)  # width, height: one 32px crop fits with room to move
REALBLUR_DIR = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"


def frame_pair(key: str, size: tuple[int, int] = SIZE, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) uint8 RGB: a seeded smooth texture and its box blur, shifted by `shift` pixels in x."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    width, height = size
    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)).astype(np.float32), (0, 0), 2.0)
    sharp = (
        np.clip((noise - noise.min()) / (np.ptp(noise) + 1e-6) * 215 + 20, 0, 255).round().astype(np.uint8)
    )
    blur = cv2.blur(sharp, (5, 5))
    if shift:
        move = np.float32([[1, 0, shift], [0, 1, 0]])
        blur = cv2.warpAffine(blur, move, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return blur, sharp


def write_image(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1]), path
    return path


def mprnet_tree(root: Path, name: str = "HIDE", splits: dict[str, int] | None = None) -> Path:
    """root/NAME/SPLIT/{input,target}/NNNN.png; returns root/NAME."""
    raw = root / name
    for split, count in (splits or {"test": 3}).items():
        for i in range(count):
            blur, sharp = frame_pair(f"{name}/{split}/{i}")
            write_image(raw / split / "input" / f"{i:04d}.png", blur)
            write_image(raw / split / "target" / f"{i:04d}.png", sharp)
    return raw


def restormer_flat(root: Path, name: str = "HIDE", count: int = 2) -> Path:
    """root/test/NAME/{input,target}/NNNN.png; returns root/test/NAME."""
    raw = root / "test" / name
    for i in range(count):
        blur, sharp = frame_pair(f"flat/{name}/{i}")
        write_image(raw / "input" / f"{i:04d}.png", blur)
        write_image(raw / "target" / f"{i:04d}.png", sharp)
    return raw


def realblur_tree(root: Path, train: int = 3, test: int = 2, shift: float = 0.0) -> Path:
    """root/RealBlur with RealBlur-J's folders and list files (scene001.. for train, then test); returns it."""
    raw = root / "RealBlur"
    lines: dict[str, list[str]] = {"train": [], "test": []}
    scene = 0
    for split, count in (("train", train), ("test", test)):
        for i in range(count):
            scene += 1
            name = f"scene{scene:03d}"
            blur, sharp = frame_pair(f"realblur/{name}", shift=shift)
            gt = f"{REALBLUR_DIR}/{name}/gt/gt_{i + 1}.png"
            bl = f"{REALBLUR_DIR}/{name}/blur/blur_{i + 1}.png"
            write_image(raw / gt, sharp)
            write_image(raw / bl, blur)
            lines[split].append(f"{gt} {bl}")
    for split, rows in lines.items():
        (raw / f"RealBlur_J_{split}_list.txt").write_text("\n".join(rows) + "\n")
    return raw


def hide_tree(
    root: Path, train: int = 2, close_ups: int = 2, long_shots: int = 1, unused_gt: int = 2
) -> Path:
    """root/HIDE_dataset as its authors ship it: train/N.png, test/test-{close-ups,long-shot}/N.png and every
    sharp frame in GT/N.png (with `unused_gt` GT frames no blurred frame names)."""
    raw = root / "HIDE_dataset"
    folders = [("train", train), ("test/test-close-ups", close_ups), ("test/test-long-shot", long_shots)]
    n = 0
    for folder, count in folders:
        for _ in range(count):
            blur, sharp = frame_pair(f"hide/{n}")
            write_image(raw / folder / f"{n}_hide.png", blur)
            write_image(raw / "GT" / f"{n}_hide.png", sharp)
            n += 1
    for _ in range(unused_gt):
        write_image(raw / "GT" / f"{n}_hide.png", frame_pair(f"hide/{n}")[1])
        n += 1
    return raw
