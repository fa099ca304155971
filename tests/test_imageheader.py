"""PNG and JPEG header checks without decoding: real files from cv2, and every way a header can be wrong."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest

from pipeline.imageheader import (
    PNG_SIGNATURE,
    ImageHeaderError,
    image_size,
    parse_jpeg_header,
    parse_png_header,
    read_image_info,
    read_jpeg_header,
)

NOISE = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


def ihdr(width, height, depth=8, color=2, comp=0, filt=0, interlace=0, crc=None):
    data = struct.pack(">IIBBBBB", width, height, depth, color, comp, filt, interlace)
    crc = zlib.crc32(b"IHDR" + data) if crc is None else crc
    return PNG_SIGNATURE + struct.pack(">I4s", 13, b"IHDR") + data + struct.pack(">I", crc)


def jpeg(image=NOISE, *params):
    ok, data = cv2.imencode(".jpg", image, list(params))
    assert ok
    return data.tobytes()


def segment(marker, body):
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def exif_orientation(value):
    """An APP1 EXIF segment whose only tag is Orientation (0x0112) = value."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, value, 0) + struct.pack(">I", 0)
    return segment(0xE1, b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd)


def with_segments(data, *segments):
    """A JPEG with `segments` inserted right after its SOI marker."""
    return data[:2] + b"".join(segments) + data[2:]


def sof_offset(data):
    """Where a cv2 JPEG's frame header (SOF0 or SOF2) starts."""
    return min(i for i in (data.find(b"\xff\xc0"), data.find(b"\xff\xc2")) if i > 0)


# ---- PNG -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "channels"), [((48, 64, 3), 3), ((48, 64), 1), ((48, 64, 4), 4)])
def test_reads_size_of_real_pngs(tmp_path, shape, channels):
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.zeros(shape, np.uint8))
    info = read_image_info(path)
    assert (info.format, info.width, info.height, info.bit_depth, info.channels) == (
        "png",
        64,
        48,
        8,
        channels,
    )
    assert image_size(path) == (64, 48)


def test_sixteen_bit_png(tmp_path):
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.zeros((5, 7, 3), np.uint16))
    assert read_image_info(path).bit_depth == 16


def test_png_only_reads_the_header(tmp_path):
    # A PNG cut right after IHDR has a valid header: cheap checks pass, `--verify` is what catches it.
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), np.full((20, 30, 3), 7, np.uint8))
    path.write_bytes(path.read_bytes()[:40])
    assert image_size(path) == (30, 20)


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
def test_bad_png_headers(head, message):
    with pytest.raises(ImageHeaderError, match=message):
        parse_png_header(head)


def test_jpeg_named_png_says_what_it_is(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(jpeg())
    with pytest.raises(ImageHeaderError, match=r"not a PNG \(bad signature; the bytes are a JPEG\)"):
        image_size(path)


# ---- JPEG ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "params", "channels", "progressive"),
    [
        (NOISE, (), 3, False),
        (NOISE[:, :, 0], (), 1, False),
        (NOISE, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), 3, True),
        (NOISE[:1, :1], (cv2.IMWRITE_JPEG_QUALITY, 5), 3, False),
    ],
)
def test_reads_size_of_real_jpegs(tmp_path, image, params, channels, progressive):
    path = tmp_path / "x.jpg"
    assert cv2.imwrite(str(path), image, list(params))
    info = read_image_info(path)
    height, width = image.shape[:2]
    assert (info.format, info.width, info.height, info.bit_depth) == ("jpeg", width, height, 8)
    assert (info.channels, info.progressive) == (channels, progressive)


@pytest.mark.parametrize("name", ["x.jpeg", "X.JPG", "x.Jpeg"])
def test_jpeg_suffixes_in_any_case(tmp_path, name):
    (tmp_path / name).write_bytes(jpeg())
    assert image_size(tmp_path / name) == (53, 37)


def test_metadata_before_the_frame_header_is_skipped_not_read(tmp_path):
    """EXIF, ICC and XMP segments of up to 64 KB each come before SOF: their bodies are seeked over, so a few
    hundred bytes are read whatever their size."""
    big = [segment(0xE1, b"Exif\x00\x00" + bytes(65000)), segment(0xE2, b"ICC_PROFILE\x00" + bytes(65000)),
           segment(0xFE, b"a comment"), b"\xff\xff\xff"]  # fmt: skip
    data = with_segments(jpeg(), exif_orientation(6), *big)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape == (37, 53, 3)
    assert image_size(path) == (53, 37)  # stored size: EXIF orientation 6 (rotate 90) is not applied

    class CountingReader(io.BytesIO):
        consumed = 0

        def read(self, n=-1):
            chunk = super().read(n)
            self.consumed += len(chunk)
            return chunk

    fh = CountingReader(data)
    assert read_jpeg_header(fh).width == 53
    assert len(data) > 130_000 and fh.consumed < 100


def test_truncated_jpegs_are_errors():
    data = with_segments(jpeg(), segment(0xE1, b"Exif\x00\x00" + bytes(500)))
    sof = sof_offset(data)
    for cut in (3, 4, 5, 100, sof, sof + 1, sof + 3, sof + 7):
        with pytest.raises(ImageHeaderError, match="truncated JPEG"):
            parse_jpeg_header(data[:cut])
    # cut after the frame header: the header is fine (only `--verify`, a full decode, can tell)
    assert (parse_jpeg_header(data[: sof + 12]).width, parse_jpeg_header(data[: sof + 12]).height) == (53, 37)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"not a JPEG \(bad signature\)"),
        (b"GIF89a garbage that is long enough", r"not a JPEG \(bad signature\)"),
        (ihdr(10, 10), r"not a JPEG \(bad signature; the bytes are a PNG\)"),
        (b"\xff\xd8\xff\xda\x00\x02", "marker 0xDA before any frame header"),
        (b"\xff\xd8\xff\xd9", "marker 0xD9 before any frame header"),
        (b"\xff\xd8" + segment(0xE0, b"JFIF\x00") + b"\x00\x00", "no segment marker at byte 11"),
        (b"\xff\xd8\xff\xe0\x00\x01", "segment of length 1"),
        (b"\xff\xd8" + segment(0xC0, struct.pack(">BHHB", 8, 10, 0, 3) + bytes(9)), "invalid size 0x10"),
        (b"\xff\xd8" + segment(0xC0, struct.pack(">BHHB", 8, 10, 10, 2) + bytes(6)), "2 components"),
        (
            b"\xff\xd8" + segment(0xC0, struct.pack(">BHHB", 8, 10, 10, 3) + bytes(3)),
            "frame header of length",
        ),
    ],
)
def test_bad_jpeg_headers(data, message):
    with pytest.raises(ImageHeaderError, match=message):
        parse_jpeg_header(data)


def test_garbage_named_jpg_is_an_error(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageHeaderError, match="bad signature"):
        image_size(path)
    path.write_bytes(
        b"\xff\xd8\xff" + np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    )
    with pytest.raises(ImageHeaderError, match="corrupt JPEG|truncated JPEG|unsupported JPEG|invalid size"):
        image_size(path)


def test_other_suffixes_and_missing_files(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"II*\x00")
    with pytest.raises(ImageHeaderError, match="not a PNG or JPEG name"):
        image_size(tmp_path / "x.tif")
    with pytest.raises(OSError):
        image_size(tmp_path / "nope.png")
    with pytest.raises(OSError):
        image_size(tmp_path / "nope.jpg")
