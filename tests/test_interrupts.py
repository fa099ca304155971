"""pipeline.interrupts in one process: signals become exceptions, held back where a step must finish, and the
worker children a signal must end first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from pipeline.dirlock import OutputLock, lock_path
from pipeline.interrupts import (
    Terminated,
    children_of,
    deferred,
    end_workers,
    exit_code,
    signals_as_exceptions,
)


def test_sigterm_raises_terminated_and_the_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Terminated) as stopped, signals_as_exceptions():
        signal.raise_signal(signal.SIGTERM)
    assert exit_code(stopped.value) == 143 and exit_code(KeyboardInterrupt()) == 130
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_signal_waits_for_the_end_of_a_deferred_block():
    done = []
    with pytest.raises(KeyboardInterrupt), deferred():
        signal.raise_signal(signal.SIGINT)
        done.append("renamed")  # the step the signal must not cut in two
    assert done == ["renamed"]


class _SignalledWhileLocking(OutputLock):
    """Ctrl-C arrives just after the lock file was created, before the with-block is entered."""

    def acquire(self) -> None:
        super().acquire()
        signal.raise_signal(signal.SIGINT)


def test_a_lock_taken_while_a_signal_was_held_back_is_released(tmp_path):
    out = tmp_path / "shards"
    with pytest.raises(KeyboardInterrupt), _SignalledWhileLocking(str(out), "shard"):
        pytest.fail("the with-block must not run")
    assert not (tmp_path / ".shards.lock").exists() and lock_path(str(out)).endswith(".shards.lock")


def test_end_workers_kills_only_the_marked_children_that_ignore_signals():
    ignoring = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"
    worker = subprocess.Popen([sys.executable, "-c", f"{ignoring}  # marked-worker"], stdout=subprocess.PIPE)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert worker.stdout is not None and worker.stdout.readline() == b"1\n"  # SIGINT ignored from here on
        worker.send_signal(signal.SIGINT)
        assert children_of(os.getpid(), "marked-worker") == [worker.pid]
        assert end_workers("marked-worker") == 1
        assert worker.wait(timeout=10) == -signal.SIGKILL
        assert children_of(os.getpid(), "marked-worker") == [] and other.poll() is None
    finally:
        for proc in (worker, other):
            proc.kill()
            proc.wait()
