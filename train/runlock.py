"""One `trainctl fit` per run dir: RUN/fit.lock holds the owner's pid and host.

A second fit on the same run dir is refused (two trainers would interleave checkpoints). A lock left by a process
that died on this host is taken over with a notice; a lock from another host is never taken over automatically,
since we cannot tell whether that process is alive.

On a local disk the owner also holds an flock(2) on the lock file for as long as it runs, which the kernel drops
when the process dies, however it dies. The file is created complete (written under a private name, then
hard-linked into place, which fails if a lock exists), and a stale one is taken over in place while holding its
flock, so of several fits restarted at once after a crash exactly one wins. On filesystems without flock or hard
links (some FUSE mounts) it falls back to O_EXCL and the pid check.

Object stores reached through tf.io.gfile have no exclusive create, so there the lock is written with a random
token and read back after `REMOTE_SETTLE_S`: of two fits that start at the same moment, the last writer wins (the
store is strongly consistent) and the other sees a foreign token and refuses.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.console import log
from pipeline.errors import DataError
from train import rundir

LOCK_FILE = "fit.lock"
REMOTE_SETTLE_S = 2.0  # longer than a small object upload takes; only paid once, at the start of a fit
# errnos meaning "this filesystem cannot do that" (flock or link), as opposed to a real failure
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL, errno.EPERM})


def pid_alive(pid: int) -> bool:
    """True when a process with `pid` exists on this host (signal 0 checks without signalling)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def pid_namespace() -> int | None:
    """The inode of this process's pid namespace (Linux), telling containers with the same host name apart."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _flock(fd: int) -> bool | None:
    """Try an exclusive, non-blocking flock: True if taken, False if another open file holds it, None if the
    filesystem has no flock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return None
        raise
    return True


class RunLock:
    """Context manager: take RUN/fit.lock, remove it on exit (only if still ours)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = rundir.join(str(run_dir), LOCK_FILE)
        self.remote = rundir.is_remote(self.path)
        self.owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "pidns": pid_namespace(),
            "token": uuid.uuid4().hex,
        }
        self.held = False
        self._fd: int | None = None  # local: the open lock file whose flock we hold

    def _content(self) -> bytes:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return (json.dumps({**self.owner, "started": started}) + "\n").encode("utf-8")

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(rundir.read_text(self.path))
            return data if isinstance(data, dict) else {"unreadable": True}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {"unreadable": True}

    @staticmethod
    def _who(other: dict[str, Any]) -> str:
        pid, host = int(other.get("pid", -1) or -1), str(other.get("host", ""))
        return f"pid {pid} on {host}" if host else "another process"

    def _refuse(self, other: dict[str, Any]) -> DataError:
        return DataError(
            f"{self.path}: run dir is in use by {self._who(other)}; stop that trainer or use another train.run_dir "
            "(delete the lock file only if that trainer is gone)"
        )

    def _stale_here(self, other: dict[str, Any]) -> bool:
        """A lock whose process is gone, as far as this process can tell: same host, same pid namespace (a
        container restarted under the same host name has a new one, and its pids say nothing about the old)."""
        if (
            other.get("host") != self.owner["host"]
            or other.get("pidns", self.owner["pidns"]) != self.owner["pidns"]
        ):
            return False
        return not pid_alive(int(other.get("pid", -1) or -1))

    # ---- local: link a complete file into place, flock it; take a stale one over in place ----------------

    def _create_local(self) -> bool | None:
        """Publish our lock file if none exists: True done, False one exists, None no hard links here."""
        tmp = f"{self.path}.{self.owner['token']}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, self._content())
            os.fsync(fd)
            if _flock(fd) is False:  # nobody else knows this file yet
                raise DataError(f"{tmp}: cannot lock a new file")
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno in _UNSUPPORTED:
                    return None
                raise
            self._fd, fd = fd, -1
            return True
        finally:
            if fd >= 0:
                os.close(fd)
            os.unlink(tmp)

    def _take_over_local(self) -> bool:
        """Take over an existing lock file whose owner holds no flock (dead); False to retry, raises to refuse."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:  # released meanwhile
            return False
        try:
            locked = _flock(fd)
            if locked is None:  # no flock here: the pid check is all we have
                other = self._read()
                if other and self._stale_here(other):
                    log(
                        f"notice: {self.path}: taking over a stale lock from pid {other.get('pid')} (no longer running)"
                    )
                    rundir.remove(self.path)
                    return False
                raise self._refuse(other)
            if not locked:
                raise self._refuse(self._read())
            try:
                if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                    return False  # released (unlinked) and re-created after we opened it
            except FileNotFoundError:
                return False  # released after we opened it
            other = self._read()
            if other.get("host") != self.owner["host"] or not other.get("pid"):
                raise self._refuse(other)  # another host's lock (flock may not reach across hosts), or junk
            log(f"notice: {self.path}: taking over a stale lock from pid {other['pid']} (no longer running)")
            os.ftruncate(fd, 0)
            os.pwrite(fd, self._content(), 0)
            os.fsync(fd)
            self._fd, fd = fd, -1
            return True
        finally:
            if fd >= 0:
                os.close(fd)

    def _acquire_exclusive(self) -> bool:
        """Fallback without hard links: O_EXCL create, flock (where there is flock), then write."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            _flock(fd)
            os.write(fd, self._content())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def _acquire_local(self) -> None:
        linkable = True
        for _ in range(10):
            created = self._create_local() if linkable else self._acquire_exclusive()
            if created is None:
                linkable = False
                continue
            if created or self._take_over_local():
                return
        raise DataError(f"{self.path}: could not take the run dir lock")

    # ---- remote: write, wait, and check that our token is the one that stayed ----------------------------

    def _acquire_remote(self) -> None:
        for _ in range(3):
            other = self._read()
            if not other:
                rundir.write_bytes(self.path, self._content())
                time.sleep(REMOTE_SETTLE_S)
                other = self._read()
                if other.get("token") == self.owner["token"]:
                    return
                if not other:  # vanished: try again
                    continue
            if self._stale_here(other):
                log(
                    f"notice: {self.path}: taking over a stale lock from pid {other.get('pid')} (no longer running)"
                )
                rundir.remove(self.path)
                continue
            raise self._refuse(other)
        raise DataError(f"{self.path}: could not take the run dir lock")

    def acquire(self) -> None:
        rundir.makedirs(rundir.split(self.path)[0])
        if self.remote:
            self._acquire_remote()
        else:
            self._acquire_local()
        self.held = True

    def verify(self) -> None:
        """Raise a DataError if the lock is no longer ours (remote only: a local lock is held by flock).

        The remote lock is checked once at start; the trainer calls this at every checkpoint, so a second fit
        that took it over anyway (a restarted VM with a new host name and a hand-deleted lock, a write slower
        than the settle time) stops this one before the two interleave many checkpoints."""
        if not (self.held and self.remote):
            return
        other = self._read()
        if other.get("token") != self.owner["token"]:
            self.held = False
            raise DataError(
                f"{self.path}: the run dir lock was taken over by {self._who(other)}; stopping so that two "
                "trainers do not interleave checkpoints"
            )

    def release(self) -> None:
        if self.held and self._read().get("token") == self.owner["token"]:
            rundir.remove(self.path)  # while still holding the flock: nobody takes over a file being removed
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
