"""Paths that may be local or remote (gs://, s3://, hdfs://...): local ones use the OS, remote ones Beam FileSystems.

Remote stores have no directories: a "directory" there is a prefix, `rename` copies then deletes, and an object
appears whole when its writer closes. Callers that need atomic publishing handle that (see publish.py).
"""

from __future__ import annotations

import os
import posixpath
import shutil
from typing import BinaryIO

import numpy as np

_BUFFER = 1 << 20


def is_remote(path: str) -> bool:
    """True for URLs with a scheme (gs://, s3://, ...), which go through Beam FileSystems."""
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    base = str(base)
    return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def split(path: str) -> tuple[str, str]:
    """(parent, name) of a path, ignoring a trailing slash."""
    path = str(path).rstrip("/") or "/"
    return posixpath.split(path) if is_remote(path) else os.path.split(path)


def _beam():
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems, CompressionTypes.UNCOMPRESSED


def open_read(path: str) -> BinaryIO:
    if not is_remote(path):
        return open(path, "rb", buffering=_BUFFER)
    fs, raw = _beam()
    return fs.open(path, compression_type=raw)


def open_write(path: str) -> BinaryIO:
    """Open a file for writing, creating local parent dirs; remote objects appear when closed."""
    if not is_remote(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, "wb", buffering=_BUFFER)
    fs, raw = _beam()
    return fs.create(path, compression_type=raw)


def read_bytes(path: str) -> bytes:
    with open_read(path) as fh:
        return fh.read()


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file atomically: temp name then rename locally; a single object upload remotely."""
    if is_remote(path):
        with open_write(path) as fh:
            fh.write(data)
        return
    tmp = f"{path}.part-{os.getpid()}"
    with open_write(tmp) as fh:
        fh.write(data)
    os.replace(tmp, path)


def read_image(path: str, rgb: bool = False) -> np.ndarray | None:
    """Decode an image file to HxWx3 uint8, BGR (cv2's order) or RGB; None if it cannot be read or decoded."""
    import cv2

    flag = cv2.IMREAD_COLOR_RGB if rgb else cv2.IMREAD_COLOR
    if not is_remote(path):
        return cv2.imread(path, flag)
    try:
        data = read_bytes(path)
    except OSError:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), flag)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    fs, _ = _beam()
    return fs.exists(path) or bool(listdir(path))


def listdir(path: str) -> list[str]:
    """Names directly inside a directory (remote: objects under the prefix); [] if there is none."""
    if not is_remote(path):
        return sorted(os.listdir(path)) if os.path.isdir(path) else []
    fs, _ = _beam()
    prefix = path.rstrip("/") + "/"
    try:
        found = fs.match([prefix + "*"])[0].metadata_list
    except Exception:  # Beam raises BeamIOError for an empty match on some stores
        return []
    return sorted({m.path[len(prefix) :].split("/")[0] for m in found if m.path.startswith(prefix)})


def size(path: str) -> int:
    if not is_remote(path):
        return os.path.getsize(path)
    fs, _ = _beam()
    return fs.match([path])[0].metadata_list[0].size_in_bytes


def makedirs(path: str) -> None:
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


def delete_tree(path: str) -> None:
    """Remove a directory (remote: every object under the prefix); missing is fine."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    fs, _ = _beam()
    names = listdir(path)
    if names:
        fs.delete([join(path, n) for n in names])


def delete_file(path: str) -> None:
    if not is_remote(path):
        os.remove(path)
        return
    fs, _ = _beam()
    fs.delete([path])


def rename(src: str, dst: str) -> None:
    """Rename a file or (local) directory. Remote: each object under `src` moves to `dst` (not atomic)."""
    if not is_remote(src):
        os.rename(src, dst)
        return
    fs, _ = _beam()
    names = listdir(src)
    if names:
        fs.rename([join(src, n) for n in names], [join(dst, n) for n in names])
    else:
        fs.rename([src], [dst])
