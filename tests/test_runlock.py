"""train.runlock: one fit per run dir; stale locks from dead processes on this host are taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import DataError
from train.runlock import LOCK_FILE, RunLock, pid_alive


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_is_created_with_pid_and_host_and_removed(tmp_path: Path) -> None:
    with RunLock(tmp_path / "run") as lock:
        data = json.loads(Path(lock.path).read_text())
        assert data["pid"] == os.getpid() and data["host"] == socket.gethostname()
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_a_live_lock_refuses_a_second_fit(tmp_path: Path) -> None:
    with (
        RunLock(tmp_path),
        pytest.raises(DataError, match=f"{LOCK_FILE}: run dir is in use by pid {os.getpid()}"),
    ):
        RunLock(tmp_path).acquire()


def test_a_stale_lock_on_this_host_is_taken_over(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pid = dead_pid()
    assert not pid_alive(pid)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    with RunLock(tmp_path) as lock:
        assert json.loads(Path(lock.path).read_text())["pid"] == os.getpid()
    assert f"taking over a stale lock from pid {pid}" in capsys.readouterr().err


def test_a_lock_from_another_host_is_never_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "host": "some-other-vm"}))
    with pytest.raises(DataError, match="on some-other-vm"):
        RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK_FILE).exists()
