"""Files in a run dir that may be local or on an object store (gs://, s3:// through tensorflow-io, ram://...).

The trainer already needs TensorFlow's filesystems for checkpoints and TensorBoard events, so everything else in
the run dir (run.json, versions, the lock, sample grids) goes through the same layer: local paths use the OS
(atomic rename, fsync), remote ones `tf.io.gfile`. Object stores have no atomic directory rename and an object
appears whole when its writer closes; callers that publish several files write a marker file last (see
train.run.versions).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np

from pipeline import fsio
from pipeline.errors import DataError
from pipeline.fsio import is_remote, join, split

# tf.io.gfile filesystems that write a file in place (not as one object appearing whole): written via rename
_IN_PLACE = ("file://", "ram://")

__all__ = [
    "copy",
    "discard",
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
    "reason",
    "remove",
    "rmtree",
    "split",
    "write_bytes",
    "write_json",
    "write_png",
]


def _tf() -> Any:
    """TensorFlow, imported on first use without its start-up noise (local paths never import it)."""
    from train.tf_startup import import_tensorflow

    return import_tensorflow()


def _gfile() -> Any:
    return _tf().io.gfile


def reason(exc: BaseException) -> str:
    """The OS or store reason in a TensorFlow I/O error, first line only: `{{function_node ...}}
    /path/file.tempstate123; No space left on device [Op:SaveV2]` -> `No space left on device`."""
    text = (getattr(exc, "message", None) or str(exc)).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    line = re.sub(r"\s*\[Op:\w+\]\s*$", "", line)
    line = re.sub(r"^\{\{[^}]*\}\}\s*", "", line)
    return line.rsplit("; ", 1)[-1] if "; " in line else line


@contextlib.contextmanager
def _named(path: str, action: str) -> Iterator[None]:
    """Turn a TensorFlow I/O error (unreachable bucket, no permission, ...) into a DataError naming `path`;
    NotFoundError passes through for the caller to decide."""
    tf = _tf()

    try:
        yield
    except tf.errors.NotFoundError:
        raise
    except tf.errors.OpError as exc:
        raise DataError(f"{path}: cannot {action} ({reason(exc)})") from None


def _stat(path: str) -> Any:
    """gfile's stat of a remote path, None when it does not exist; other errors raise (tf.io.gfile.isdir and
    listdir would report an unreachable bucket as a missing directory)."""
    tf = _tf()

    with _named(path, "read"):
        try:
            return _gfile().stat(path)
        except tf.errors.NotFoundError:
            return None


def name(path: str) -> str:
    """The last component of `path` (`gs://b/run/generator/v0003` -> `v0003`)."""
    return split(str(path))[1]


def exists(path: str) -> bool:
    path = str(path)
    return _stat(path) is not None if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    path = str(path)
    if not is_remote(path):
        return os.path.isdir(path)
    stat = _stat(path)
    return stat is not None and bool(stat.is_directory)


def isfile(path: str) -> bool:
    path = str(path)
    if not is_remote(path):
        return os.path.isfile(path)
    stat = _stat(path)
    return stat is not None and not stat.is_directory


def makedirs(path: str) -> None:
    """Create `path` and its parents (a no-op on stores where directories are prefixes)."""
    path = str(path)
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)
        return
    with _named(path, "create the directory"):
        _gfile().makedirs(path)


def listdir(path: str) -> list[str]:
    """Sorted entry names of a directory (no trailing slashes); [] when it does not exist."""
    path = str(path)
    if not is_remote(path):
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []
    stat = _stat(path)
    if stat is None or not stat.is_directory:
        return []
    with _named(path, "list"):
        names = _gfile().listdir(path)
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
    tf = _tf()
    try:
        with _named(path, "read"), _gfile().GFile(path, "rb") as fh:
            return fh.read()
    except tf.errors.NotFoundError:
        raise FileNotFoundError(2, "No such file or object", path) from None


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file so that readers see the old or the new content, never a part.

    Locally: a temp file in the same dir, fsync, rename (pipeline.fsio). On object stores: one object upload,
    which the store makes visible only when complete. On the other filesystems of tf.io.gfile that write in place
    (file://, ram://): a temp file renamed over the target. Parent dirs are created either way.
    """
    path = str(path)
    if not is_remote(path):
        fsio.write_bytes(path, data)
        return
    makedirs(split(path)[0])
    in_place = path.startswith(_IN_PLACE)
    target = f"{path}.part-{os.getpid()}" if in_place else path
    with _named(path, "write"), _gfile().GFile(target, "wb") as fh:
        fh.write(data)
    if in_place:
        with _named(path, "write"):
            _gfile().rename(target, path, overwrite=True)


def write_json(path: str, data: Any) -> None:
    """Indented, key-sorted JSON, written as `write_bytes` does."""
    write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def write_png(path: str, rgb: np.ndarray) -> None:
    """An HxWx3 uint8 RGB image as PNG, written as `write_bytes` does."""
    from pipeline.records import encode_image

    write_bytes(str(path), encode_image(np.ascontiguousarray(rgb), "png"))


def copy(src: str, dst: str) -> None:
    """Copy one local or remote file to a remote path (one object upload)."""
    with _named(dst, "write"):
        _gfile().copy(str(src), str(dst), overwrite=True)


def remove(path: str) -> None:
    """Delete one file; a missing file is not an error."""
    path = str(path)
    if not is_remote(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    tf = _tf()
    with contextlib.suppress(tf.errors.NotFoundError), _named(path, "delete"):
        _gfile().remove(path)


def rmtree(path: str) -> None:
    """Delete a directory tree (every object under the prefix, remotely); a missing one is not an error."""
    path = str(path)
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    tf = _tf()
    with contextlib.suppress(tf.errors.NotFoundError), _named(path, "delete"):
        _gfile().rmtree(path)


def discard(path: str) -> None:
    """Best-effort `rmtree` for error paths: never raises, so the error being handled is the one reported."""
    with contextlib.suppress(Exception):
        rmtree(path)
