"""`memfs://`: an in-memory Beam FileSystem with object-store semantics (no directories, whole-object writes).

Defining the class registers the scheme with Beam FileSystems in this process, so the remote-path code (fsio,
publish, the shard pipeline on the in-process runner, inspect) runs here as it would on gs:// or s3://.
EVENTS records every object write and delete in order: what a reader polling the store could have seen when.
"""

from __future__ import annotations

import io

from apache_beam.io.filesystem import BeamIOError, CompressedFile, CompressionTypes, FileMetadata, FileSystem

OBJECTS: dict[str, bytes] = {}
EVENTS: list[tuple[str, str]] = []  # ("put" | "delete", path), oldest first


class _Upload(io.BytesIO):
    """An object appears only when its writer closes, as on GCS/S3."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def close(self) -> None:
        if not self.closed:
            OBJECTS[self.path] = self.getvalue()
            EVENTS.append(("put", self.path))
        super().close()


class MemFileSystem(FileSystem):
    @classmethod
    def scheme(cls):
        return "memfs"

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for path in sorted(OBJECTS):
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(OBJECTS[path]))

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        return _Upload(path)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        if path not in OBJECTS:
            raise BeamIOError(f"{path}: no such object")
        raw = io.BytesIO(OBJECTS[path])
        if compression_type == CompressionTypes.AUTO:
            compression_type = CompressionTypes.detect_compression_type(path)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return raw
        return CompressedFile(raw, compression_type=compression_type)

    def copy(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names, strict=True):
            OBJECTS[dst] = OBJECTS[src]
            EVENTS.append(("put", dst))

    def rename(self, source_file_names, destination_file_names):
        self.copy(source_file_names, destination_file_names)
        self.delete(source_file_names)

    def exists(self, path):
        return path in OBJECTS

    def size(self, path):
        return len(OBJECTS[path])

    def last_updated(self, path):
        return 0.0

    def checksum(self, path):
        return str(len(OBJECTS[path]))

    def metadata(self, path):
        return FileMetadata(path, len(OBJECTS[path]))

    def delete(self, paths):
        missing = [p for p in paths if p not in OBJECTS]
        if missing:
            raise BeamIOError("Delete operation failed", {p: FileNotFoundError(p) for p in missing})
        for p in reversed(
            paths
        ):  # a batch delete promises no order: take the one worst for a marker listed first
            del OBJECTS[p]
            EVENTS.append(("delete", p))
