"""Paths that may be local or remote (gs://, s3://, hdfs://...): local ones use the OS, remote ones Beam FileSystems.

Remote stores have no directories: a "directory" there is a prefix, `rename` copies then deletes, and an object
appears whole when its writer closes. Callers that need atomic publishing handle that (see publish.py).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import shutil
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

_BUFFER = 1 << 20
# Errors that mean "the destination cannot take this write" (full disk, file size limit, quota, read-only).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EROFS})


@contextlib.contextmanager
def errors_name(path: str | os.PathLike[str]) -> Iterator[None]:
    """Make OSErrors raised while writing `path` name it.

    A full disk surfaces at write, flush or close with no file name at all, and shutil's sendfile copy names the
    *source* file; either way the one-line CLI error would not say where the problem is.
    """
    try:
        yield
    except OSError as exc:
        target = os.fspath(path)
        if exc.filename is None or (exc.errno in WRITE_ERRNOS and exc.filename != target):
            raise OSError(exc.errno, exc.strerror or str(exc), target) from exc
        raise


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
    if not fs.exists(path):  # stores differ in what they raise; callers handle FileNotFoundError
        raise FileNotFoundError(errno.ENOENT, "No such file or object", path)
    return fs.open(path, compression_type=raw)


def open_write(path: str, parents: bool = True) -> BinaryIO:
    """Open a file for writing, creating local parent dirs unless `parents` is False; remote objects appear when
    closed."""
    if not is_remote(path):
        if parents:
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
    try:
        with errors_name(path), open_write(tmp) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a local file written by someone else's code (e.g. Keras) to disk before it is published."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write `data` as indented, key-sorted JSON atomically (see `write_bytes`)."""
    write_bytes(os.fspath(path), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def write_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write an HxWx3 uint8 RGB image as PNG atomically (see `write_bytes`)."""
    from pipeline.records import encode_image

    write_bytes(os.fspath(path), encode_image(np.ascontiguousarray(rgb), "png"))


def read_image(path: str, rgb: bool = False) -> np.ndarray | None:
    """Decode an image file to HxWx3 uint8, BGR (cv2's order) or RGB; None if it cannot be read or decoded.

    A JPEG's EXIF orientation is not applied: the pixels come as stored, the size its header (and so the
    organized manifest) gives. cv2 would otherwise turn a frame tagged "rotate 90" on its side."""
    import cv2

    from pipeline.native_stderr import libpng_quieted

    flag = (cv2.IMREAD_COLOR_RGB if rgb else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    if not is_remote(path):
        with libpng_quieted():  # the caller reports an undecodable file; libpng's own line would be noise
            return cv2.imread(path, flag)
    try:
        data = read_bytes(path)
    except OSError:
        return None
    with libpng_quieted():
        return cv2.imdecode(np.frombuffer(data, np.uint8), flag)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    fs, _ = _beam()
    return fs.exists(path) or bool(listdir(path))


def _objects(path: str, prefix: str = "") -> list[str]:
    """Full paths of every remote object under `path/` whose relative name starts with `prefix`."""
    fs, _ = _beam()
    base = path.rstrip("/") + "/"
    try:
        found = fs.match([base + prefix + "**"])[0].metadata_list
    except Exception:  # some stores raise BeamIOError for an empty match
        return []
    return sorted(m.path for m in found if m.path.startswith(base))


def listdir(path: str, prefix: str = "") -> list[str]:
    """Names directly inside a directory that start with `prefix`; [] if there is none.

    Remote stores list objects: the names are the first path components under `path/`, so "directories"
    of objects show up too.
    """
    if not is_remote(path):
        return sorted(n for n in os.listdir(path) if n.startswith(prefix)) if os.path.isdir(path) else []
    base = path.rstrip("/") + "/"
    return sorted({p[len(base) :].split("/")[0] for p in _objects(path, prefix)})


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
    objects = _objects(path)
    if objects:
        _beam()[0].delete(objects)


def delete_file(path: str, missing_ok: bool = False) -> None:
    """Delete one file; a missing one raises FileNotFoundError unless `missing_ok`."""
    if not is_remote(path):
        try:
            os.remove(path)
        except FileNotFoundError:
            if not missing_ok:
                raise
        return
    fs, _ = _beam()
    if not fs.exists(path):  # stores differ in what they raise for a missing object
        if missing_ok:
            return
        raise FileNotFoundError(errno.ENOENT, "No such file or object", path)
    fs.delete([path])


def rename(src: str, dst: str) -> None:
    """Rename a file or (local) directory. Remote: each object under `src/` moves to `dst/` (not atomic)."""
    if not is_remote(src):
        os.rename(src, dst)
        return
    fs, _ = _beam()
    objects = _objects(src)
    if not objects:
        fs.rename([src], [dst])
        return
    base = src.rstrip("/") + "/"
    fs.rename(objects, [dst.rstrip("/") + "/" + p[len(base) :] for p in objects])
