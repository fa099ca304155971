"""A JPEG's EXIF orientation, read from its bytes and applied to its pixels, as image viewers show it.

Cameras and phones store the sensor's pixels as they come and record how to turn them in the EXIF Orientation tag
(0x0112). `trainctl deblur` applies it when reading, so a portrait photo comes out as a portrait PNG (which has no
such tag) instead of lying on its side. The data stages (organize, shard, evaluate) keep the stored pixels
instead: there the size is the header's and the A/B frames of a pair must stay aligned (pipeline.fsio).
"""

from __future__ import annotations

import struct

import numpy as np

ORIENTATION_TAG = 0x0112
_SHORT = 3  # TIFF field type of the Orientation value
_EXIF = b"Exif\x00\x00"
_SOS, _EOI, _APP1 = 0xDA, 0xD9, 0xE1
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # TEM, SOI, RSTn: no length field

# What each orientation value asks a viewer to do to the stored pixels (EXIF 2.3, tag 0x0112).
MEANING = {
    1: "as stored",
    2: "mirrored left-right",
    3: "rotated 180°",
    4: "mirrored top-bottom",
    5: "transposed (mirrored, rotated 90° counter-clockwise)",
    6: "rotated 90° clockwise",
    7: "transversed (mirrored, rotated 90° clockwise)",
    8: "rotated 90° counter-clockwise",
}


def jpeg_orientation(data: bytes | memoryview) -> int:
    """The EXIF Orientation (1-8) of a JPEG file's bytes; 1 when the file has none or it cannot be read."""
    view = memoryview(data)
    if bytes(view[:2]) != b"\xff\xd8":
        return 1
    i = 2
    while i + 4 <= len(view):
        if view[i] != 0xFF:
            return 1  # not a segment boundary: a damaged file, the decoder will say so
        marker = view[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (_SOS, _EOI):  # the EXIF segment comes before the image data
            return 1
        (length,) = struct.unpack_from(">H", view, i + 2)
        body = view[i + 4 : i + 2 + length]
        if marker == _APP1 and bytes(body[: len(_EXIF)]) == _EXIF:
            return _tiff_orientation(body[len(_EXIF) :])
        i += 2 + length
    return 1


def _tiff_orientation(tiff: memoryview) -> int:
    """The Orientation entry of the first IFD of an EXIF block (a small TIFF file); 1 if absent or malformed."""
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None or len(tiff) < 8 or struct.unpack_from(order + "H", tiff, 2)[0] != 42:
        return 1
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(tiff):
            break
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
        if tag == ORIENTATION_TAG and kind == _SHORT and n >= 1:
            (value,) = struct.unpack_from(order + "H", tiff, entry + 8)
            return value if value in MEANING else 1
    return 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels of `image` (HxW or HxWxC, as stored) turned the way `orientation` says a viewer shows them."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: a[::-1].swapaxes(0, 1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: a[:, ::-1].swapaxes(0, 1),
    }
    return np.ascontiguousarray(transforms.get(orientation, transforms[1])(image))
