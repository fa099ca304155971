"""PNG header checks without decoding: real files from cv2, and every way a header can be wrong."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from pipeline.pngmeta import PNG_SIGNATURE, PngError, parse_header, png_size, read_png_info


def ihdr(width, height, depth=8, color=2, comp=0, filt=0, interlace=0, crc=None):
    data = struct.pack(">IIBBBBB", width, height, depth, color, comp, filt, interlace)
    crc = zlib.crc32(b"IHDR" + data) if crc is None else crc
    return PNG_SIGNATURE + struct.pack(">I4s", 13, b"IHDR") + data + struct.pack(">I", crc)


@pytest.mark.parametrize(("shape", "color_type"), [((48, 64, 3), 2), ((48, 64), 0), ((48, 64, 4), 6)])
def test_reads_size_of_real_pngs(tmp_path, shape, color_type):
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.zeros(shape, np.uint8))
    info = read_png_info(path)
    assert (info.width, info.height, info.bit_depth, info.color_type) == (64, 48, 8, color_type)
    assert png_size(path) == (64, 48)


def test_sixteen_bit_png(tmp_path):
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.zeros((5, 7, 3), np.uint16))
    assert read_png_info(path).bit_depth == 16


def test_only_reads_the_header(tmp_path):
    # A PNG cut right after IHDR has a valid header: cheap checks pass, `--verify` is what catches it.
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.full((20, 30, 3), 7, np.uint8))
    path.write_bytes(path.read_bytes()[:40])
    assert png_size(path) == (30, 20)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"hello, this is a text file named .png", "bad signature"),
        (b"", "bad signature"),
        (PNG_SIGNATURE + b"\x00\x00", "truncated"),
        (ihdr(10, 10)[:12] + b"IDAT" + ihdr(10, 10)[16:], "IHDR"),
        (ihdr(10, 10, crc=1), "checksum"),
        (ihdr(0, 10), "invalid size"),
        (ihdr(10, 10, depth=3), "bit depth"),
        (ihdr(10, 10, color=5), "colour type"),
        (ihdr(10, 10, comp=1), "compression"),
    ],
)
def test_bad_headers(head, message):
    with pytest.raises(PngError, match=message):
        parse_header(head)


def test_jpeg_named_png(tmp_path):
    path = tmp_path / "photo.png"
    ok, data = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    path.write_bytes(data.tobytes())
    with pytest.raises(PngError, match="signature"):
        png_size(path)


def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(OSError):
        png_size(tmp_path / "nope.png")
