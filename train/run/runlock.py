"""One `trainctl fit` per run dir: RUN/fit.lock holds the owner's pid and host.

A second fit on the same run dir is refused (two trainers would interleave checkpoints); a lock left by a fit that
died on this host is taken over with a notice. The mechanism is `pipeline.dirlock` (flock held for the run on a
local disk, write-then-verify on object stores); this module words the lock and sends its remote reads and writes
through tf.io.gfile (train.run.rundir), the filesystem layer the trainer uses for everything else in a run dir.
The trainer calls `verify()` at every checkpoint, so a fit that lost a remote lock stops before two fits
interleave many checkpoints.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.dirlock import DirLock, pid_alive, pid_namespace
from train.run import rundir

LOCK_FILE = "fit.lock"

__all__ = ["LOCK_FILE", "RunLock", "pid_alive", "pid_namespace"]


class RunLock(DirLock):
    what = "run dir lock"
    refusal_text = (
        "run dir is in use by {who}; stop that trainer or use another train.run_dir (delete the lock file only "
        "if that trainer is gone)"
    )
    lost_text = "the run dir lock was taken over by {who}; stopping so that two trainers do not interleave checkpoints"

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(rundir.join(str(run_dir), LOCK_FILE), store=rundir)
