"""Place a RAW file in OUT as a hardlink, symlink or copy, atomically and idempotently.

Hardlinks are the default because GOPRO is 35 GB: organizing it must not duplicate it. Across filesystems (EXDEV)
or where links are not allowed, the Linker falls back to copying, once, with a notice. An output that already holds
its source (same inode, same bytes, or for symlinks the same target) is left alone, so reruns write nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from pipeline.console import log
from pipeline.fsio import errors_name

TMP_MARK = ".tmp-organize"  # suffix of temp names; leftovers from an interrupted run are cleaned as stale
_LINK_FALLBACK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK}


def _same_bytes(a: str | Path, b: str | Path, chunk: int = 1 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            block = fa.read(chunk)
            if block != fb.read(chunk):
                return False
            if not block:
                return True


def is_current(src: str, dst: Path, link: str) -> bool:
    """Whether `dst` already holds `src` as asked: the same link target for symlinks, else same inode or bytes."""
    try:
        st_dst = os.lstat(dst)
        if link == "symlink":
            return stat.S_ISLNK(st_dst.st_mode) and os.path.samefile(dst, src)
        if not stat.S_ISREG(st_dst.st_mode):
            return False
        st_src = os.stat(src)
        if (st_dst.st_dev, st_dst.st_ino) == (st_src.st_dev, st_src.st_ino):
            return True
        return st_dst.st_size == st_src.st_size and _same_bytes(src, dst)
    except OSError:
        return False


class Linker:
    """Places RAW files in OUT as hardlinks, symlinks or copies, each via a temp name and an atomic rename."""

    def __init__(self, link: str, before_first_change: Callable[[], None] | None = None) -> None:
        self.link = link
        self.fell_back = False
        self._before_first_change = before_first_change

    def place(self, src: str, dst: Path) -> bool:
        """Make `dst` hold `src`; False when it already did (nothing written)."""
        if is_current(src, dst, self.link):
            return False
        if self._before_first_change is not None:
            self._before_first_change()
            self._before_first_change = None
        tmp = dst.with_name(f".{dst.name}{TMP_MARK}")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        try:
            with errors_name(dst):
                self._make(src, dst, tmp)
                os.replace(tmp, dst)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a half-copied temp file on a full disk must not stay behind
            raise
        return True

    def _make(self, src: str, dst: Path, tmp: Path) -> None:
        if self.link == "hardlink" and not self.fell_back:
            try:
                os.link(src, tmp)
            except OSError as exc:
                if exc.errno not in _LINK_FALLBACK_ERRNOS:
                    raise
                self.fell_back = True
                log(f"notice: cannot hardlink {src} -> {dst.parent} ({exc.strerror}); copying instead")
        if self.link == "symlink":
            os.symlink(os.path.abspath(src), tmp)
        elif self.link == "copy" or self.fell_back:
            shutil.copyfile(src, tmp)
