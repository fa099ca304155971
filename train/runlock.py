"""One `trainctl fit` per run dir: RUN/fit.lock holds the owner's pid and host.

A second fit on the same run dir is refused (two trainers would interleave checkpoints). A lock left by a process
that died on this host (its pid no longer exists) is taken over with a notice; a lock from another host is never
taken over automatically, since we cannot tell whether that process is alive.

On a local disk the lock is created with O_EXCL. Object stores reached through tf.io.gfile have no exclusive
create, so there the lock is written with a random token and read back after `REMOTE_SETTLE_S`: of two fits that
start at the same moment, the last writer wins (the store is strongly consistent) and the other sees a foreign
token and refuses.
"""

from __future__ import annotations

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


class RunLock:
    """Context manager: create RUN/fit.lock exclusively, remove it on exit (only if still ours)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = rundir.join(str(run_dir), LOCK_FILE)
        self.remote = rundir.is_remote(self.path)
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex}
        self.held = False

    def _content(self) -> bytes:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return (json.dumps({**self.owner, "started": started}) + "\n").encode("utf-8")

    def _create(self) -> bool:
        """Local: exclusive create. Remote: write, wait, and check that our token is the one that stayed."""
        if self.remote:
            rundir.write_bytes(self.path, self._content())
            time.sleep(REMOTE_SETTLE_S)
            return self._read().get("token") == self.owner["token"]
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(self._content())
        return True

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(rundir.read_text(self.path))
            return data if isinstance(data, dict) else {"unreadable": True}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {"unreadable": True}

    def acquire(self) -> None:
        rundir.makedirs(rundir.split(self.path)[0])
        for _ in range(3):
            other = self._read() if self.remote else {}
            if not other:
                if self._create():
                    self.held = True
                    return
                other = self._read()
                if not other:  # vanished between our create and read: try again
                    continue
            pid, host = int(other.get("pid", -1) or -1), str(other.get("host", ""))
            if host == self.owner["host"] and not pid_alive(pid):
                log(f"notice: {self.path}: taking over a stale lock from pid {pid} (no longer running)")
                rundir.remove(self.path)
                continue
            who = f"pid {pid} on {host}" if host else "another process"
            raise DataError(
                f"{self.path}: run dir is in use by {who}; stop that trainer or use another train.run_dir "
                "(delete the lock file only if that trainer is gone)"
            )
        raise DataError(f"{self.path}: could not take the run dir lock")

    def release(self) -> None:
        if self.held and self._read().get("token") == self.owner["token"]:
            rundir.remove(self.path)
        self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
