"""Ctrl-C and SIGTERM for a command that runs worker processes (`gopro-prep shard` on the local Beam runner).

A terminal's Ctrl-C reaches the whole process group: the command and Beam's SDK worker processes at once. Left to
themselves the workers die mid-bundle, Beam's threads print a traceback for each, and the main process can wait
forever at exit for threads serving workers that are gone. Instead:

- workers ignore SIGINT and SIGTERM from their first instruction (beam_runner.worker_command); on a signal the
  main process first ends them (`ending_workers`): Beam's own cleanup waits for them, and they must not write on
  into a staging dir being removed;
- the main process turns the first SIGINT or SIGTERM into an exception (KeyboardInterrupt, `Terminated`), so the
  run's own cleanup runs (staging dir removed, lock released); `exit_on_signal` then leaves with 130 or 143 at once,
  without joining Beam's threads;
- inside `deferred()` (renames that must happen together, taking or dropping a lock) a signal waits for the end of
  the block; a second signal while cleaning up leaves at once with its code (the next run takes over the stale
  lock and removes the staging dir).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

import typer

HANDLED = (signal.SIGINT, signal.SIGTERM)
WORKER_EXIT_WAIT_S = 5.0  # a SIGKILLed process is gone in milliseconds; this only bounds a wedged kernel
REAP_EVERY_S = 0.05


class Terminated(BaseException):
    """SIGTERM as an exception, the way KeyboardInterrupt is SIGINT (not an Exception: nothing swallows it)."""


def exit_code(exc: BaseException) -> int:
    """128 + the signal number: 130 for KeyboardInterrupt (SIGINT), 143 for Terminated (SIGTERM)."""
    return 128 + int(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


class _Guard:
    """The installed handlers' state: the signal acted on, one held back by `deferred()`, the nesting depth."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.pending: int | None = None
        self.depth = 0
        self.workers: list[str] = []  # command-line markers of the children to end first (`ending_workers`)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None or self.pending is not None:  # second signal: no more waiting
            sys.stderr.write(f"{signal.Signals(signum).name} again: exiting at once\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        if self.depth:
            self.pending = signum
            return
        self.stop(signum)

    def stop(self, signum: int) -> None:
        self.signum = signum
        # The threads serving the workers now fail (a worker exited, a stream closed) and Beam logs it: expected,
        # not news.
        threading.excepthook = _silent
        logging.disable(logging.CRITICAL)
        for marker in self.workers:
            end_workers(marker)
            # A worker thread may be about to start one more: keep ending them while the block unwinds.
            threading.Thread(
                target=self._keep_ending, args=(marker,), name="end-workers", daemon=True
            ).start()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated

    def _keep_ending(self, marker: str) -> None:
        while marker in self.workers:
            _kill(children_of(os.getpid(), marker))
            time.sleep(REAP_EVERY_S)

    def release_pending(self) -> None:
        if not self.depth and self.pending is not None and self.signum is None:
            self.stop(self.pending)


_active: _Guard | None = None


def _silent(args: threading.ExceptHookArgs) -> None:
    """threading.excepthook once a signal stopped the run."""


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[_Guard | None]:
    """While the block runs, SIGINT raises KeyboardInterrupt and SIGTERM `Terminated` in the main thread (no-op
    elsewhere, or when an outer block already installed the handlers)."""
    global _active
    if _active is not None or threading.current_thread() is not threading.main_thread():
        yield _active
        return
    guard = _Guard()
    previous = {signum: signal.signal(signum, guard.handle) for signum in HANDLED}
    _active, hook, logs = guard, threading.excepthook, logging.root.manager.disable
    try:
        yield guard
    finally:
        _active, threading.excepthook = None, hook
        logging.disable(logs)
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back until the block has run (in the main thread), then act on it."""
    with signals_as_exceptions() as guard:
        if guard is None:
            yield
            return
        guard.depth += 1
        try:
            yield
        finally:
            guard.depth -= 1
            guard.release_pending()


@contextlib.contextmanager
def ending_workers(marker: str) -> Iterator[None]:
    """While the block runs, a SIGINT/SIGTERM first ends this process's children whose command line contains
    `marker` (they ignore signals), then raises: code waiting for those workers (Beam joins their threads in its
    own cleanup) sees them gone instead of waiting forever."""
    with signals_as_exceptions() as guard:
        if guard is None:
            yield
            return
        guard.workers.append(marker)
        try:
            yield
        finally:
            guard.workers.remove(marker)


@contextlib.contextmanager
def exit_on_signal() -> Iterator[None]:
    """For a CLI command (wrapping `cli_errors`): once a signal stopped it and its cleanup ran, leave with the
    exit code `cli_errors` chose (130/143) without waiting for other threads (Beam's may never end)."""
    with signals_as_exceptions() as guard:
        try:
            yield
        except typer.Exit as exc:
            if guard is not None and guard.signum is not None:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(exc.exit_code)
            raise


# ---- the worker processes --------------------------------------------------------------------------------------


def children_of(parent: int, marker: str) -> list[int]:
    """Pids of `parent`'s live children whose command line contains `marker` (Linux /proc; elsewhere none)."""
    found = []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) ": state ppid ...
        if int(fields[1]) == parent and fields[0] != b"Z" and marker.encode() in cmdline:
            found.append(int(entry))
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def end_workers(marker: str) -> int:
    """SIGKILL this process's children whose command line contains `marker` and wait until they are gone (or
    zombies); returns how many."""
    pids = children_of(os.getpid(), marker)
    _kill(pids)
    deadline = time.monotonic() + WORKER_EXIT_WAIT_S
    while children_of(os.getpid(), marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(pids)
