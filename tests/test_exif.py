"""JPEG EXIF orientation in `trainctl deblur`'s reader: every orientation, in both byte orders, turns the pixels the
way OpenCV's viewer-style decode does (checked against it); files without the tag, or with a damaged one, are
read as stored."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from train.inference import exif, images


def exif_segment(orientation: int, order: str = "<") -> bytes:
    """An APP1 Exif segment whose first IFD holds only the Orientation tag (SHORT)."""
    entry = struct.pack(order + "HHIHH", exif.ORIENTATION_TAG, 3, 1, orientation, 0)
    ifd = struct.pack(order + "H", 1) + entry + struct.pack(order + "I", 0)
    tiff = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8) + ifd
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def tagged_jpeg(path: Path, image: np.ndarray, orientation: int | None, order: str = "<") -> Path:
    """`image` (RGB or gray) as a quality-100 JPEG, with an Orientation tag right after SOI unless None."""
    stored = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, data = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    data = data.tobytes()
    path.write_bytes(data if orientation is None else data[:2] + exif_segment(orientation, order) + data[2:])
    return path


def blocks(h: int, w: int, seed: int) -> np.ndarray:
    """8x8 blocks of random colours: orientation errors show, JPEG keeps them exact enough to compare."""
    small = np.random.default_rng(seed).integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_a_viewer(tmp_path: Path, orientation: int, order: str) -> None:
    path = tagged_jpeg(tmp_path / "p.jpg", blocks(24, 40, seed=orientation), orientation, order)
    viewer = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)  # applies the tag
    image, note = images.load(path)
    np.testing.assert_array_equal(image, viewer)
    assert image.shape == ((40, 24, 3) if orientation >= 5 else (24, 40, 3))
    assert note == (
        "" if orientation == 1 else f"EXIF orientation {orientation} applied: {exif.MEANING[orientation]}"
    )


def test_gray_jpeg_is_turned_too(tmp_path: Path) -> None:
    gray = blocks(16, 32, seed=1)[:, :, 0]
    image, note = images.load(tagged_jpeg(tmp_path / "g.jpg", gray, 8))
    assert image.shape == (32, 16) and note.startswith("EXIF orientation 8 applied")
    np.testing.assert_array_equal(image, cv2.imread(str(tmp_path / "g.jpg"), cv2.IMREAD_GRAYSCALE))


def test_no_tag_or_a_damaged_one_reads_as_stored(tmp_path: Path) -> None:
    rgb = blocks(16, 24, seed=2)
    plain = tagged_jpeg(tmp_path / "plain.jpg", rgb, None)
    stored = images.read(plain)
    assert images.load(plain)[1] == "" and stored.shape == (16, 24, 3)
    data = plain.read_bytes()
    segment = bytearray(exif_segment(6))
    segment[12:14] = b"XX"  # not II/MM: no TIFF header
    (tmp_path / "bad.jpg").write_bytes(data[:2] + bytes(segment) + data[2:])
    np.testing.assert_array_equal(images.read(tmp_path / "bad.jpg"), stored)
    assert exif.jpeg_orientation(b"\xff\xd8\xff\xe1\x00") == 1  # cut short: no crash
    assert exif.jpeg_orientation(data[:2] + exif_segment(9) + data[2:]) == 1  # out of range
