"""The lock `organize` and `shard` hold on their OUT for a whole run: `PARENT/.NAME.lock`, beside OUT.

Two runs writing one OUT would interleave: two organizes (`--blur blur` and `--blur blur_gamma`) race on the same
temp names, and of two shards the second silently replaces the first's dataset. The lock lives beside OUT, not in
it, because shard publishes OUT by renaming a staging dir into place (publish.py). The mechanism, stale takeover
and the remote (gs://) variant are `pipeline.dirlock`'s.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline import fsio, interrupts
from pipeline.dirlock import DirLock


def lock_path(out: str) -> str:
    """`PARENT/.NAME.lock` for OUT = `PARENT/NAME` (a local OUT resolved first: every spelling shares one lock)."""
    if not fsio.is_remote(out):
        out = os.path.realpath(out)
    parent, name = fsio.split(out)
    return fsio.join(parent, f".{name}.lock")


class OutputLock(DirLock):
    """Context manager: one `TOOL COMMAND` at a time writes OUT; a second is refused naming the first."""

    what = "output dir lock"

    def __init__(self, out: str, command: str, tool: str = "gopro-prep") -> None:
        super().__init__(lock_path(str(out)), command=f"{tool} {command}")
        self.out = str(out)

    def refusal(self, other: dict[str, Any]) -> str:
        return (
            f"{self.path}: {self.out} is being written by {self.who(other)}; wait for it to finish or choose "
            "another --out (delete the lock file only if that run is gone)"
        )

    def lost(self, other: dict[str, Any]) -> str:
        return (
            f"{self.path}: the lock on {self.out} was taken over by {self.who(other)} during this run; "
            "nothing published"
        )

    def __enter__(self) -> OutputLock:
        # A Ctrl-C between creating the lock file and holding it would strand it: held back until it is taken.
        try:
            with interrupts.deferred():
                self.acquire()
        except BaseException:  # a signal held back until the lock was taken: the with-block never runs
            self.release()
            raise
        return self

    def release(self) -> None:
        with interrupts.deferred():
            super().release()
