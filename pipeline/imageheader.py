"""Cheap image checks: size and validity from the header of a PNG (IHDR) or a JPEG (SOFn), no pixel decoding.

Organize runs this on every frame of GOPRO (6428 files) in well under a second; a full decode is `--verify`.
A PNG's size is in its first 33 bytes. A JPEG's is in its frame header (SOFn), after APPn (EXIF, ICC, XMP), DQT
and DHT segments of any size: the parser walks the segment headers and seeks over their bodies, so it reads a few
small blocks however much metadata comes first. EXIF orientation is not applied: the size is that of the stored
pixels, which is what `fsio.read_image` decodes (it ignores orientation too).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # frames organize accepts (lower case; names match in any case)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"
PNG_HEADER_BYTES = 8 + 4 + 4 + 13 + 4  # signature, IHDR length, "IHDR", IHDR data, CRC
# Allowed bit depths per PNG colour type (PNG spec, 11.2.2) and the channels each colour type decodes to.
_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_MAX_SIDE = 2**31 - 1
# JPEG frame headers: SOF0-3, 5-7, 9-11, 13-15 (C4 is DHT, C8 reserved, CC is DAC); the progressive ones.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length
_SOS, _EOI = 0xDA, 0xD9
_MAX_SEGMENTS = 4096  # a real JPEG has a few dozen before its frame header


class ImageHeaderError(ValueError):
    """The bytes are not a well-formed PNG or JPEG header; the message says what is wrong."""


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "png" | "jpeg"
    width: int
    height: int
    bit_depth: int  # PNG bit depth, JPEG sample precision
    channels: int  # PNG: from the colour type (palette: 1); JPEG: components
    progressive: bool = False  # Adam7-interlaced PNG or progressive JPEG


def _looks_like(head: bytes) -> str:
    if head.startswith(PNG_SIGNATURE):
        return "; the bytes are a PNG"
    if head.startswith(JPEG_SIGNATURE + b"\xff"):
        return "; the bytes are a JPEG"
    return ""


def parse_png_header(head: bytes) -> ImageInfo:
    """Parse the first 33 bytes of a PNG; raise ImageHeaderError naming the first problem found."""
    if len(head) < len(PNG_SIGNATURE) or head[:8] != PNG_SIGNATURE:
        raise ImageHeaderError(f"not a PNG (bad signature{_looks_like(head)})")
    if len(head) < PNG_HEADER_BYTES:
        raise ImageHeaderError(f"truncated PNG header ({len(head)} bytes)")
    length, chunk_type = struct.unpack(">I4s", head[8:16])
    if chunk_type != b"IHDR" or length != 13:
        raise ImageHeaderError("first chunk is not a 13-byte IHDR")
    data = head[16:29]
    (crc,) = struct.unpack(">I", head[29:33])
    if zlib.crc32(b"IHDR" + data) != crc:
        raise ImageHeaderError("IHDR checksum mismatch")
    width, height, bit_depth, color_type, compression, filtering, interlace = struct.unpack(">IIBBBBB", data)
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise ImageHeaderError(f"invalid size {width}x{height}")
    if bit_depth not in _BIT_DEPTHS.get(color_type, ()):
        raise ImageHeaderError(f"invalid colour type {color_type} with bit depth {bit_depth}")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise ImageHeaderError("invalid IHDR compression/filter/interlace method")
    return ImageInfo("png", width, height, bit_depth, _PNG_CHANNELS[color_type], interlace == 1)


def _read_exact(fh: BinaryIO, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) < n:
        raise ImageHeaderError(f"truncated JPEG: file ends in the {what} before the frame header")
    return data


def _next_marker(fh: BinaryIO) -> int:
    """The next marker code; fill bytes (0xFF runs) before it are allowed."""
    where = fh.tell()
    if _read_exact(fh, 1, "segment list") != b"\xff":
        raise ImageHeaderError(f"corrupt JPEG: no segment marker at byte {where}")
    code = 0xFF
    while code == 0xFF:
        code = _read_exact(fh, 1, "segment list")[0]
    if code == 0x00:
        raise ImageHeaderError(f"corrupt JPEG: no segment marker at byte {where}")
    return code


def read_jpeg_header(fh: BinaryIO) -> ImageInfo:
    """Walk a JPEG's segments up to its frame header (SOFn), seeking over the others; ImageHeaderError if the
    file is not a JPEG, ends first, or reaches the image data (SOS) or its end without a frame header."""
    head = fh.read(3)
    if head != JPEG_SIGNATURE + b"\xff":
        raise ImageHeaderError(f"not a JPEG (bad signature{_looks_like(head + fh.read(5))})")
    fh.seek(2)
    for _ in range(_MAX_SEGMENTS):
        marker = _next_marker(fh)
        if marker in _STANDALONE:
            continue
        if marker in (_SOS, _EOI, 0xD8):
            raise ImageHeaderError(f"corrupt JPEG: marker 0x{marker:02X} before any frame header (SOFn)")
        (length,) = struct.unpack(">H", _read_exact(fh, 2, f"0x{marker:02X} segment"))
        if length < 2:
            raise ImageHeaderError(f"corrupt JPEG: 0x{marker:02X} segment of length {length}")
        if marker not in _SOF:
            fh.seek(length - 2, os.SEEK_CUR)  # a seek past the end shows up as truncation at the next read
            continue
        body = _read_exact(fh, 6, "frame header")
        precision, height, width, components = struct.unpack(">BHHB", body)
        if length != 8 + 3 * components:
            raise ImageHeaderError(
                f"corrupt JPEG: frame header of length {length} for {components} components"
            )
        if width == 0 or height == 0:
            raise ImageHeaderError(f"invalid size {width}x{height}")
        if components not in (1, 3, 4) or not 2 <= precision <= 16:
            raise ImageHeaderError(f"unsupported JPEG: {components} components of {precision} bits")
        return ImageInfo("jpeg", width, height, precision, components, marker in _PROGRESSIVE_SOF)
    raise ImageHeaderError(f"corrupt JPEG: no frame header in its first {_MAX_SEGMENTS} segments")


def parse_jpeg_header(data: bytes) -> ImageInfo:
    """`read_jpeg_header` on bytes already in memory."""
    return read_jpeg_header(io.BytesIO(data))


def is_image_name(name: str) -> bool:
    """Whether a file name ends in one of IMAGE_SUFFIXES, in any case."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def read_image_info(path: str | Path) -> ImageInfo:
    """The header of the PNG or JPEG at `path`, by its suffix (OSError if it cannot be opened, ImageHeaderError if
    its bytes are not what the suffix says)."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageHeaderError(f"not a PNG or JPEG name (suffix {suffix or 'none'!r})")
    with open(path, "rb") as fh:
        if suffix == ".png":
            return parse_png_header(fh.read(PNG_HEADER_BYTES))
        return read_jpeg_header(fh)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the PNG or JPEG at `path` without decoding it."""
    info = read_image_info(path)
    return info.width, info.height
