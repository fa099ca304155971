"""One writer per output directory: a lock file naming the owner (pid, host), refused to a second writer.

The one lock mechanism of every writer: `organize` and `shard` lock a `.OUT.lock` beside OUT (`OutputLock`, here),
`trainctl import-weights` the same beside RUN_DIR, `trainctl fit` RUN/fit.lock (train/run/runlock.py: `RunLock`, the
wording and tf.io.gfile as its remote store). A subclass only words its refusals.
A lock left by a process that died on this host is taken over with a notice; one from another host never is,
since we cannot tell whether that process is alive.

Local disk: the owner holds an flock(2) on the file while it runs, which the kernel drops however the process
dies. The file is created complete (written under a private name, then hard-linked into place, which fails if a
lock exists), and a stale one is taken over in place under its flock, so of several runs restarted at once after a
crash exactly one wins. Without flock or hard links (some FUSE mounts) it falls back to O_EXCL and the pid check.

Object stores have no exclusive create: the lock is written with a random token and read back after
`REMOTE_SETTLE_S`; of two runs that start together the last writer wins (the store is strongly consistent) and the
other sees a foreign token and refuses. Remote I/O goes through a store: `pipeline.fsio` (Beam FileSystems) by
default; RunLock passes train.run.rundir (tf.io.gfile), which the trainer uses for the rest of a run dir.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
import uuid
from types import TracebackType
from typing import Any, Protocol

from pipeline import fsio, interrupts
from pipeline.console import log
from pipeline.errors import DataError

REMOTE_SETTLE_S = 2.0  # longer than a small object upload takes; only paid once, when a run starts
# errnos meaning "this filesystem cannot do that" (flock or link), as opposed to a real failure; EXDEV: some
# union and network filesystems refuse even a link within one directory
_UNSUPPORTED = frozenset(
    {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL, errno.EPERM, errno.EXDEV}
)


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


class Store(Protocol):
    """Where a remote lock file is read and written (and its dir made, local or remote)."""

    def read_text(self, path: str) -> str: ...
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def remove(self, path: str) -> None: ...  # a missing file is not an error
    def makedirs(self, path: str) -> None: ...


class FsioStore:
    """The default Store: pipeline.fsio (Beam FileSystems for gs://, s3://; the OS for local paths)."""

    @staticmethod
    def read_text(path: str) -> str:
        return fsio.read_bytes(path).decode("utf-8")

    @staticmethod
    def write_bytes(path: str, data: bytes) -> None:
        fsio.write_bytes(path, data)

    @staticmethod
    def remove(path: str) -> None:
        fsio.delete_file(path, missing_ok=True)

    @staticmethod
    def makedirs(path: str) -> None:
        try:
            fsio.makedirs(path)
        except FileExistsError:  # a file where the directory should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path) from None


class DirLock:
    """Context manager: take the lock file `path`, remove it on exit (only if still ours). SIGINT / SIGTERM are
    held back while it is taken and released (a signal between creating the file and holding it would strand it).

    Subclasses word the refusals: `refusal_text` and `lost_text`, formatted with `who` (the other owner) and `lock`
    (this object), after the lock's path."""

    what = "lock"  # in "could not take the {what}"
    refusal_text = "in use by {who} (delete the lock file only if that process is gone)"
    lost_text = "the lock was taken over by {who}; stopping"

    def __init__(self, path: str, command: str | None = None, store: Store = FsioStore()) -> None:
        self.path = str(path)
        self.remote = fsio.is_remote(self.path)
        self.store = store
        self.owner: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "pidns": pid_namespace(),
            "token": uuid.uuid4().hex,
            **({"command": command} if command else {}),
        }
        self.held = False
        self._fd: int | None = None  # local: the open lock file whose flock we hold

    # ---- wording ----------------------------------------------------------------------------------------------

    @staticmethod
    def who(other: dict[str, Any]) -> str:
        """`pid 123 on HOST` (led by the command when the lock names one) or `another process`."""
        pid, host = int(other.get("pid", -1) or -1), str(other.get("host", ""))
        if not host:
            return "another process"
        command = other.get("command")
        return f"{command} (pid {pid} on {host})" if command else f"pid {pid} on {host}"

    def refusal(self, other: dict[str, Any]) -> str:
        return f"{self.path}: " + self.refusal_text.format(who=self.who(other), lock=self)

    def lost(self, other: dict[str, Any]) -> str:
        return f"{self.path}: " + self.lost_text.format(who=self.who(other), lock=self)

    # ---- I/O: local through the OS, remote (and making the lock's dir) through the store ------------------

    def _settle(self) -> None:
        time.sleep(REMOTE_SETTLE_S)

    def _remove(self) -> None:
        if self.remote:
            self.store.remove(self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)

    def _content(self) -> bytes:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return (json.dumps({**self.owner, "started": started}) + "\n").encode("utf-8")

    def _read(self) -> dict[str, Any]:
        try:
            if self.remote:
                text = self.store.read_text(self.path)
            else:
                with open(self.path, encoding="utf-8") as fh:
                    text = fh.read()
            data = json.loads(text)
            return data if isinstance(data, dict) else {"unreadable": True}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {"unreadable": True}

    def _stale_here(self, other: dict[str, Any]) -> bool:
        """A lock whose process is gone, as far as this process can tell: same host, same pid namespace (a
        container restarted under the same host name has a new one, and its pids say nothing about the old)."""
        if (
            other.get("host") != self.owner["host"]
            or other.get("pidns", self.owner["pidns"]) != self.owner["pidns"]
        ):
            return False
        return not pid_alive(int(other.get("pid", -1) or -1))

    def _notice_takeover(self, other: dict[str, Any]) -> None:
        log(f"notice: {self.path}: taking over a stale lock from pid {other.get('pid')} (no longer running)")

    # ---- local: link a complete file into place, flock it; take a stale one over in place ----------------

    def _create_local(self) -> bool | None:
        """Publish our lock file if none exists: True done, False one exists, None no hard links here."""
        tmp = f"{self.path}.{self.owner['token']}"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:  # a read-only or full disk: name the lock, not our private temp name
            raise OSError(exc.errno, exc.strerror, self.path) from None
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
                    self._notice_takeover(other)
                    self._remove()
                    return False
                raise DataError(self.refusal(other))
            if not locked:
                raise DataError(self.refusal(self._read()))
            try:
                if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                    return False  # released (unlinked) and re-created after we opened it
            except FileNotFoundError:
                return False  # released after we opened it
            other = self._read()
            # another host's lock (flock may not reach across hosts), or junk
            if other.get("host") != self.owner["host"] or not other.get("pid"):
                raise DataError(self.refusal(other))
            self._notice_takeover(other)
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
        raise DataError(f"{self.path}: could not take the {self.what}")

    # ---- remote: write, wait, and check that our token is the one that stayed ----------------------------

    def _acquire_remote(self) -> None:
        for _ in range(3):
            other = self._read()
            if not other:
                self.store.write_bytes(self.path, self._content())
                self._settle()
                other = self._read()
                if other.get("token") == self.owner["token"]:
                    return
                if not other:  # vanished: try again
                    continue
            if self._stale_here(other):
                self._notice_takeover(other)
                self._remove()
                continue
            raise DataError(self.refusal(other))
        raise DataError(f"{self.path}: could not take the {self.what}")

    def acquire(self) -> None:
        self.store.makedirs(fsio.split(self.path)[0])
        if self.remote:
            self._acquire_remote()
        else:
            self._acquire_local()
        self.held = True

    def verify(self) -> None:
        """Raise a DataError if the lock is no longer ours (remote only: a local lock is held by flock).

        The remote lock is checked once at start; a long run calls this before it commits its result, so one
        that lost the lock anyway (a restarted VM with a new host name and a hand-deleted lock, a write slower
        than the settle time) stops instead of overwriting the other's work."""
        if not (self.held and self.remote):
            return
        other = self._read()
        if other.get("token") != self.owner["token"]:
            self.held = False
            raise DataError(self.lost(other))

    def release(self) -> None:
        with interrupts.deferred():
            if self.held and self._read().get("token") == self.owner["token"]:
                self._remove()  # while still holding the flock: nobody takes over a file being removed
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.held = False

    def __enter__(self) -> DirLock:
        try:
            with interrupts.deferred():
                self.acquire()
        except BaseException:  # a signal held back until the lock was taken: the with-block never runs
            self.release()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def lock_path(out: str) -> str:
    """`PARENT/.NAME.lock` for OUT = `PARENT/NAME` (a local OUT resolved first: every spelling shares one lock).
    Beside OUT, not in it, because shard publishes OUT by renaming a staging dir into place (publish.py)."""
    if not fsio.is_remote(out):
        out = os.path.realpath(out)
    parent, name = fsio.split(out)
    return fsio.join(parent, f".{name}.lock")


class OutputLock(DirLock):
    """One `TOOL COMMAND` at a time writes OUT (two organizes would race on the same temp names, and of two shards
    the second would silently replace the first's dataset); a second is refused naming the first."""

    what = "output dir lock"
    refusal_text = (
        "{lock.out} is being written by {who}; wait for it to finish or choose another --out (delete the lock "
        "file only if that run is gone)"
    )
    lost_text = "the lock on {lock.out} was taken over by {who} during this run; nothing published"

    def __init__(self, out: str, command: str, tool: str = "gopro-prep") -> None:
        super().__init__(lock_path(str(out)), command=f"{tool} {command}")
        self.out = str(out)
