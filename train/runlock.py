"""One `trainctl fit` per run dir: RUN/fit.lock holds the owner's pid and host.

A second fit on the same run dir is refused (two trainers would interleave checkpoints). A lock left by a process
that died on this host (its pid no longer exists) is taken over with a notice; a lock from another host is never
taken over automatically, since we cannot tell whether that process is alive.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from pipeline.console import log
from pipeline.errors import DataError

LOCK_FILE = "fit.lock"


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
        self.path = Path(run_dir) / LOCK_FILE
        self.owner = {"pid": os.getpid(), "host": socket.gethostname()}
        self.held = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**self.owner, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, fh)
            fh.write("\n")
        return True

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {"unreadable": True}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                return
            other = self._read()
            if not other:  # vanished between our create and read: try again
                continue
            pid, host = int(other.get("pid", -1) or -1), str(other.get("host", ""))
            if host == self.owner["host"] and not pid_alive(pid):
                log(f"notice: {self.path}: taking over a stale lock from pid {pid} (no longer running)")
                self.path.unlink(missing_ok=True)
                continue
            who = f"pid {pid} on {host}" if host else "another process"
            raise DataError(
                f"{self.path}: run dir is in use by {who}; stop that trainer or use another train.run_dir"
            )
        raise DataError(f"{self.path}: could not take the run dir lock")

    def release(self) -> None:
        if self.held and self._read().get("pid") == self.owner["pid"]:
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
