"""Keep libpng's own complaints off the terminal while OpenCV decodes an image; we report the file ourselves.

OpenCV's PNG decoder leaves libpng's default handlers in place, which print `libpng error: IDAT: CRC error` or
`libpng warning: iCCP: ...` straight to file descriptor 2, beside (and before) our one tidy line about the same
file (a reject row, a skipped input). Python cannot catch that output, so `libpng_quieted()` points descriptor 2
at a temporary file around the decode, then writes back everything in it except libpng's lines: output of other
threads in the meantime is delayed, never lost. Blocks may nest and overlap across threads (the first opens the
redirection, the last closes it). `--debug` / GOPRO_DEBUG=1 leaves stderr alone, to show the library's words.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.console import debug_enabled

NOISE = (b"libpng error:", b"libpng warning:")

_lock = threading.Lock()
_depth = 0
_fds: tuple[int, int] | None = (
    None  # (the real stderr, duplicated; the temporary file it is sent to meanwhile)
)


def _open() -> None:
    global _fds
    _flush_python()
    sink, name = tempfile.mkstemp(prefix="gopro-stderr-")
    os.unlink(name)  # anonymous: gone with its descriptor, whatever happens
    _fds = (os.dup(2), sink)
    os.dup2(sink, 2)


def _close() -> None:
    global _fds
    _flush_python()
    assert _fds is not None
    saved, sink = _fds
    _fds = None
    os.dup2(saved, 2)
    os.close(saved)
    os.lseek(sink, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(sink, 1 << 16):
        chunks.append(chunk)
    os.close(sink)
    lines = b"".join(chunks).splitlines(keepends=True)
    kept = b"".join(line for line in lines if not line.startswith(NOISE))
    while kept:
        kept = kept[os.write(2, kept) :]


def _flush_python() -> None:
    """Python's buffered stderr first, so its text lands on the side of the switch it was written on."""
    with contextlib.suppress(AttributeError, ValueError, OSError):  # a replaced or closed stream
        sys.stderr.flush()


@contextmanager
def libpng_quieted() -> Iterator[None]:
    """Drop libpng's `libpng error:` / `libpng warning:` lines written to stderr inside the block."""
    global _depth
    if debug_enabled():
        yield
        return
    with _lock:
        if _depth == 0:
            _open()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _close()
