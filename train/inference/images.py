"""Images as people store them: gray, gray + alpha, RGB or RGBA, 8 or 16 bit (or float), kept that way through
the model.

The generator sees RGB in [0, 1] as float32. `split` takes an image apart into that and what is needed to put it
back (`Layout`: gray or not, the alpha channel, the sample type), and `join` puts the deblurred RGB back the same
way: grayscale in, grayscale out (the luminance of the RGB output); the alpha channel carried through untouched;
16-bit in, 16-bit out, with no 8-bit rounding on the way. Arrays are in RGB(A) order; `load`/`encode_png` convert
from and to OpenCV's BGR(A) files (gray + alpha PNGs, which OpenCV expands to BGRA on reading and cannot write,
are kept two-channel), and `load` turns a JPEG the way its EXIF orientation says (train.inference.exif).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import DataError
from pipeline.imageheader import PNG_SIGNATURE
from pipeline.native_stderr import libpng_quieted
from train.inference import exif

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
PNG_GRAY_ALPHA = 4  # PNG colour type
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as cv2's RGB2GRAY
# Float images may stray this far outside [0, 1] (rounding in the caller's arithmetic): clipped, not refused.
UNIT_SLACK = 1e-3


class ImageValueError(DataError, ValueError):
    """An image the model cannot take as it is (shape, value range): a ValueError to Python callers, a data
    problem (the file skipped, exit 1) to the CLI."""


class ImageTypeError(DataError, TypeError):
    """An image of a sample type the model cannot take (e.g. int64, bool)."""


@dataclass(frozen=True)
class Layout:
    """How an image stores its pixels, so the output is stored the same way."""

    gray: bool
    alpha: bool
    dtype: str  # uint8 | uint16 | float32

    @property
    def scale(self) -> float:
        return {"uint8": 255.0, "uint16": 65535.0}.get(self.dtype, 1.0)

    def describe(self) -> str:
        depth = {"uint8": "8-bit", "uint16": "16-bit"}.get(self.dtype, "float")
        kind = "gray" if self.gray else "RGB"
        return f"{depth} {kind}{'A' if self.alpha and not self.gray else ''}{' + alpha' if self.alpha and self.gray else ''}"

    def what_was_done(self) -> str:
        """The per-file note: anything other than 8-bit RGB is named, so nothing changes silently."""
        notes = []
        if self.gray:
            notes.append("deblurred as RGB, written as gray (luminance)")
        if self.alpha:
            notes.append("alpha kept unchanged")
        if self.dtype != "uint8":
            notes.append(f"processed in float, written {self.describe().split()[0]}")
        return "; ".join(notes)


def split(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, Layout]:
    """(RGB float32 [h, w, 3] in [0, 1], the alpha channel as stored or None, Layout) of an RGB(A) or gray image."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise ImageTypeError(f"unsupported sample type {image.dtype} (use uint8, uint16 or float in [0, 1])")
    dtype = "float32" if image.dtype.kind == "f" else str(image.dtype)
    if dtype == "float32":
        image = _unit_floats(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        gray, alpha, rgb = True, None, np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 2:
        gray, alpha, rgb = True, image[:, :, 1], np.repeat(image[:, :, :1], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        gray, alpha, rgb = False, (image[:, :, 3] if image.shape[2] == 4 else None), image[:, :, :3]
    else:
        raise ImageValueError(f"unsupported image shape {image.shape} (expected HxW, HxWx3 or HxWx4)")
    layout = Layout(gray, alpha is not None, dtype)
    unit = rgb.astype(np.float32) / np.float32(layout.scale)
    return unit, alpha, layout


def _unit_floats(image: np.ndarray) -> np.ndarray:
    """A float image checked to be in [0, 1] (within UNIT_SLACK, then clipped): floats in [0, 255] or [-1, 1]
    would otherwise come back all white or half black without a word."""
    if image.size == 0:
        return image
    lo, hi = float(np.min(image)), float(np.max(image))
    if np.isnan(lo) or np.isnan(hi):
        raise ImageValueError("float image contains NaN; float images must be in [0, 1]")
    if lo < -UNIT_SLACK or hi > 1 + UNIT_SLACK:
        raise ImageValueError(
            f"float image values span [{lo:g}, {hi:g}]; float images must be in [0, 1] (divide 8-bit values "
            "by 255 and 16-bit by 65535, or pass the uint8/uint16 array itself)"
        )
    return np.clip(image, 0.0, 1.0) if lo < 0 or hi > 1 else image


def join(rgb01: np.ndarray, alpha: np.ndarray | None, layout: Layout) -> np.ndarray:
    """The inverse of `split` for a deblurred [0, 1] RGB image."""
    values = np.clip(rgb01, 0.0, 1.0)
    if layout.gray:
        values = (values @ LUMA)[:, :, None]
    if layout.dtype == "float32":
        out = values.astype(np.float32)
    else:
        out = np.rint(values * np.float32(layout.scale)).astype(layout.dtype)
    if alpha is not None:
        out = np.concatenate([out, alpha[:, :, None].astype(out.dtype)], axis=2)
    return out[:, :, 0] if out.shape[2] == 1 else out


def read(path: Path) -> np.ndarray:
    """Decode an image file (see `load`) into RGB(A), gray or gray + alpha order."""
    return load(path)[0]


def load(path: Path) -> tuple[np.ndarray, str]:
    """Decode an image file as stored (gray, gray + alpha, RGB or RGBA; 8/16 bit or float) into RGB(A) order,
    a JPEG turned the way its EXIF orientation says (as viewers show it); and a note saying so ("" if nothing
    was turned)."""
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with libpng_quieted():  # a damaged PNG is our one-line skip, not also libpng's own complaint
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise DataError(f"{path}: cannot decode image (empty, truncated or not an image)")
    if img.ndim == 3 and img.shape[2] == 4 and _png_colour_type(buf) == PNG_GRAY_ALPHA:
        img = img[:, :, [0, 3]]  # OpenCV expands gray + alpha to BGRA: B = G = R = the gray
    elif img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    orientation = exif.jpeg_orientation(buf.data) if buf[:2].tobytes() == b"\xff\xd8" else 1
    if orientation == 1:
        return img, ""
    note = f"EXIF orientation {orientation} applied: {exif.MEANING[orientation]}"
    return exif.apply_orientation(img, orientation), note


def _png_colour_type(buf: np.ndarray) -> int | None:
    """The colour type in a PNG's IHDR (byte 25), None for other files."""
    if buf.size < 26 or buf[:8].tobytes() != PNG_SIGNATURE or buf[12:16].tobytes() != b"IHDR":
        return None
    return int(buf[25])


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB(A), gray or gray + alpha image, 8 or 16 bit (float is written as 16-bit)."""
    if image.dtype.kind == "f":
        image = np.rint(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    if image.ndim == 3 and image.shape[2] == 2:
        return _encode_gray_alpha_png(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise DataError(f"cannot encode a {image.shape} {image.dtype} image as PNG")
    return png.tobytes()


def _encode_gray_alpha_png(image: np.ndarray) -> bytes:
    """A gray + alpha PNG (colour type 4, 8 or 16 bit), which OpenCV cannot write: rows with the Sub filter,
    zlib level 1 (OpenCV's PNG level here)."""
    h, w = image.shape[:2]
    depth = 16 if image.dtype == np.uint16 else 8
    samples = image.astype(">u2") if depth == 16 else image.astype(np.uint8)  # PNG stores big-endian
    rows = np.ascontiguousarray(samples).view(np.uint8).reshape(h, -1)
    step = 2 * depth // 8  # bytes per pixel: Sub subtracts the same byte of the pixel to the left
    filtered = rows.copy()
    filtered[:, step:] -= rows[:, :-step]  # modulo 256, as the filter is defined
    scanlines = np.hstack([np.full((h, 1), 1, np.uint8), filtered]).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, depth, PNG_GRAY_ALPHA, 0, 0, 0)
    return b"".join(
        [
            PNG_SIGNATURE,
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(scanlines, 1)),
            chunk(b"IEND", b""),
        ]
    )
