"""One `trainctl fit` per run dir: RUN/fit.lock holds the owner's pid and host.

A second fit on the same run dir is refused (two trainers would interleave checkpoints); a lock left by a fit that
died on this host is taken over with a notice. The mechanism is `pipeline.dirlock` (flock held for the run on a
local disk, write-then-verify on object stores); this module names the lock and sends the remote reads and writes
through tf.io.gfile (train.run.rundir), the filesystem layer the trainer uses for everything else in a run dir.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipeline.dirlock import DirLock, pid_alive, pid_namespace
from train.run import rundir

LOCK_FILE = "fit.lock"
REMOTE_SETTLE_S = 2.0  # longer than a small object upload takes; only paid once, at the start of a fit

__all__ = ["LOCK_FILE", "REMOTE_SETTLE_S", "RunLock", "pid_alive", "pid_namespace"]


class RunLock(DirLock):
    """Context manager: take RUN/fit.lock, remove it on exit (only if still ours). The trainer calls `verify()`
    at every checkpoint, so a fit that lost a remote lock stops before two fits interleave many checkpoints."""

    what = "run dir lock"

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(rundir.join(str(run_dir), LOCK_FILE))

    def refusal(self, other: dict[str, Any]) -> str:
        return (
            f"{self.path}: run dir is in use by {self.who(other)}; stop that trainer or use another "
            "train.run_dir (delete the lock file only if that trainer is gone)"
        )

    def lost(self, other: dict[str, Any]) -> str:
        return (
            f"{self.path}: the run dir lock was taken over by {self.who(other)}; stopping so that two "
            "trainers do not interleave checkpoints"
        )

    def _remote_read(self) -> str:
        return rundir.read_text(self.path)

    def _remote_write(self, data: bytes) -> None:
        rundir.write_bytes(self.path, data)

    def _remote_remove(self) -> None:
        rundir.remove(self.path)

    def _makedirs(self, path: str) -> None:
        rundir.makedirs(path)

    def _settle(self) -> None:
        time.sleep(REMOTE_SETTLE_S)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self
