"""Files in a run dir that may be local or on an object store (gs://, s3:// through tensorflow-io, ram://...).

The trainer already needs TensorFlow's filesystems for checkpoints and TensorBoard events, so everything else in
the run dir (run.json, versions, the lock, sample grids) goes through the same layer: local paths use the OS
(atomic rename, fsync), remote ones `tf.io.gfile`. Object stores have no atomic directory rename and an object
appears whole when its writer closes; callers that publish several files write a marker file last (see
train.versions).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
from typing import Any

import numpy as np

from pipeline import fsio
from pipeline.fsio import is_remote, join, split

__all__ = [
    "exists",
    "glob",
    "is_remote",
    "isdir",
    "isfile",
    "join",
    "listdir",
    "makedirs",
    "name",
    "read_bytes",
    "read_text",
    "split",
    "remove",
    "rmtree",
    "write_bytes",
    "write_json",
    "write_png",
]


def _gfile() -> Any:
    import tensorflow as tf

    return tf.io.gfile


def _not_found(exc: Exception) -> bool:
    import tensorflow as tf

    return isinstance(exc, tf.errors.NotFoundError)


def name(path: str) -> str:
    """The last component of `path` (`gs://b/run/generator/v0003` -> `v0003`)."""
    return split(str(path))[1]


def exists(path: str) -> bool:
    path = str(path)
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    path = str(path)
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    path = str(path)
    if is_remote(path):
        gfile = _gfile()
        return gfile.exists(path) and not gfile.isdir(path)
    return os.path.isfile(path)


def makedirs(path: str) -> None:
    """Create `path` and its parents (a no-op on stores where directories are prefixes)."""
    path = str(path)
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path: str) -> list[str]:
    """Sorted entry names of a directory (no trailing slashes); [] when it does not exist."""
    path = str(path)
    if not is_remote(path):
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []
    try:
        names = _gfile().listdir(path)
    except Exception as exc:
        if _not_found(exc):
            return []
        raise
    return sorted({n.rstrip("/") for n in names if n.rstrip("/")})


def glob(directory: str, pattern: str) -> list[str]:
    """Paths of the entries of `directory` whose names match the shell pattern `pattern`, sorted."""
    return [join(directory, n) for n in listdir(directory) if fnmatch.fnmatchcase(n, pattern)]


def read_bytes(path: str) -> bytes:
    """A whole file; FileNotFoundError naming `path` when it is missing, local or remote."""
    path = str(path)
    if not is_remote(path):
        with open(path, "rb") as fh:
            return fh.read()
    try:
        with _gfile().GFile(path, "rb") as fh:
            return fh.read()
    except Exception as exc:
        if _not_found(exc):
            raise FileNotFoundError(2, "No such file or object", path) from None
        raise


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file so that readers see the old or the new content, never a part.

    Locally: a temp file in the same dir, fsync, rename (pipeline.fsio). Remotely: one object upload, which the
    store makes visible only when complete. Parent dirs are created either way.
    """
    path = str(path)
    if not is_remote(path):
        fsio.write_bytes(path, data)
        return
    makedirs(split(path)[0])
    if path.startswith("ram://"):  # TF's in-memory filesystem (tests) appends to a file reopened for writing
        remove(path)
    with _gfile().GFile(path, "wb") as fh:
        fh.write(data)


def write_json(path: str, data: Any) -> None:
    """Indented, key-sorted JSON, written as `write_bytes` does."""
    import json

    write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def write_png(path: str, rgb: np.ndarray) -> None:
    """An HxWx3 uint8 RGB image as PNG, written as `write_bytes` does."""
    from pipeline.records import encode_image

    write_bytes(str(path), encode_image(np.ascontiguousarray(rgb), "png"))


def remove(path: str) -> None:
    """Delete one file; a missing file is not an error."""
    path = str(path)
    if not is_remote(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    try:
        _gfile().remove(path)
    except Exception as exc:
        if not _not_found(exc):
            raise


def rmtree(path: str) -> None:
    """Delete a directory tree (every object under the prefix, remotely); a missing one is not an error."""
    path = str(path)
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        _gfile().rmtree(path)
    except Exception as exc:
        if not _not_found(exc):
            raise
