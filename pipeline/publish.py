"""Atomic publishing of an output directory: build it in a temporary sibling, then rename it into place.

`prepare(out, ...)` checks that OUT may be (re)placed, cleans up what killed runs left behind, and returns a fresh
staging dir `OUT.tmp-HOST-PID`. `publish(staging, out)` swaps it in: the earlier OUT is renamed aside to
`OUT.old-HOST-PID`, the staging dir renamed to OUT, the old one deleted. A run killed at any point leaves either
the earlier OUT or the new one; if it dies between the two renames, the next `prepare` renames the old one back.
Remote stores (gs://, s3://) cannot rename directories: there the files move one by one with the completion marker
(dataset.json) removed first and moved last, so a reader never takes a half-moved directory for complete.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from pipeline import fsio
from pipeline.console import log
from pipeline.dirlock import pid_alive
from pipeline.errors import UsageError

TMP_TAG = ".tmp-"
OLD_TAG = ".old-"


def owner_tag() -> str:
    """HOST-PID of this process: names its staging dir, so a later run can tell whether the owner is alive."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _owner_alive(tag: str) -> bool:
    """Whether the process that made a staging dir (`HOST-PID`) may still run (unknown hosts count as alive; our
    own pid means a dead earlier run whose pid was reused)."""
    host, _, pid = tag.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return int(pid) != os.getpid() and pid_alive(int(pid))


def recover(out: str) -> None:
    """Clean up after killed runs: delete stale staging dirs; put back an OUT that a publish left renamed aside."""
    parent, name = fsio.split(out)
    for entry in fsio.listdir(parent or ".", prefix=name + "."):
        for tag in (TMP_TAG, OLD_TAG):
            if not entry.startswith(name + tag):
                continue
            path = fsio.join(parent, entry) if parent else entry
            owner = entry[len(name + tag) :]
            if _owner_alive(owner):
                log(f"leaving {path}: its run ({owner}) may still be going")
            elif tag == OLD_TAG and not fsio.exists(out):
                fsio.rename(path, out)
                log(f"restored {out} from {path} (a publish was interrupted)")
            else:
                fsio.delete_tree(path)
                log(f"removed {path} left by an interrupted run")


def check_replaceable(out: str, overwrite: bool, marker: str, owned: Callable[[str], bool]) -> None:
    """UsageError unless OUT is absent, empty, or (with `overwrite`) holds only files this tool writes."""
    if not fsio.is_remote(out) and os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"{out}: exists and is not a directory")
    names = fsio.listdir(out)
    if not names:
        return
    foreign = [n for n in names if not owned(n)]
    if foreign:
        raise UsageError(
            f"{out}: holds files this tool did not write (e.g. {foreign[0]}); refusing to replace it"
        )
    if not overwrite:
        what = "a published dataset" if marker in names else "files from an earlier run"
        raise UsageError(f"{out}: already holds {what}; pass --overwrite to replace it")


def staging_path(out: str) -> str:
    """`OUT.tmp-HOST-PID`: this process's staging dir for OUT (what `prepare` creates)."""
    return out.rstrip("/") + TMP_TAG + owner_tag()


def prepare(out: str, overwrite: bool, marker: str, owned: Callable[[str], bool]) -> str:
    """Check OUT, recover from killed runs, and return an empty staging dir next to OUT (`staging_path`)."""
    recover(out)
    check_replaceable(out, overwrite, marker, owned)
    staging = staging_path(out)
    fsio.delete_tree(staging)
    fsio.makedirs(staging)
    return staging


def publish(staging: str, out: str, marker: str) -> None:
    """Move the finished staging dir to OUT, replacing what was there (already checked by `prepare`)."""
    out = out.rstrip("/")
    if fsio.is_remote(out):
        _publish_remote(staging, out, marker)
        return
    parent = os.path.dirname(out)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if os.path.exists(out):
        old = out + OLD_TAG + owner_tag()
        os.rename(out, old)
        os.rename(staging, out)
        fsio.delete_tree(old)
    else:
        os.rename(staging, out)


def _publish_remote(staging: str, out: str, marker: str) -> None:
    if marker in fsio.listdir(out):  # first un-complete the old dataset, so no reader trusts a mix
        fsio.delete_file(fsio.join(out, marker))
    fsio.delete_tree(out)
    names = fsio.listdir(staging)
    for name in sorted(names, key=lambda n: n == marker):  # the marker moves last
        fsio.rename(fsio.join(staging, name), fsio.join(out, name))
    fsio.delete_tree(staging)


def discard(staging: str) -> None:
    """Remove a staging dir after a failed run (the earlier OUT is untouched)."""
    fsio.delete_tree(staging)
