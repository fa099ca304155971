"""train.run.runlock: one fit per run dir; stale locks from dead processes on this host are taken over."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fault_helpers import race

from pipeline.errors import DataError
from train.run.runlock import LOCK_FILE, RunLock, pid_alive


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


TAKEOVER = """
import sys
from pipeline.errors import DataError
from train.run.runlock import RunLock
print("ready", flush=True)
sys.stdin.readline()  # every racer is released at once
try:
    with RunLock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()  # hold it until the test has every answer
except DataError as exc:
    print("refused", exc, flush=True)
"""


@pytest.mark.slow
def test_two_fits_taking_over_the_same_stale_lock_at_once_one_wins(tmp_path: Path) -> None:
    """After a crash, two fits restarted at the same instant both find the dead pid's lock: exactly one may take
    it over (unlink-and-recreate let both win: each removed the other's fresh lock)."""
    for round_ in range(4):
        run_dir = tmp_path / f"r{round_}"
        run_dir.mkdir()
        (run_dir / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
        outs = race(TAKEOVER, str(run_dir), 3)
        assert outs == ["held", "refused", "refused"], (round_, outs)
        assert not (run_dir / LOCK_FILE).exists()


def test_a_lock_naming_a_live_pid_that_holds_no_flock_is_stale(tmp_path: Path) -> None:
    """On local disk the kernel's flock, not the pid, says whether the owner lives: a crashed fit's pid may
    have been reused by an unrelated process by the time the run is restarted."""
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with RunLock(tmp_path) as lock:
        assert json.loads(Path(lock.path).read_text())["pid"] == os.getpid()


def test_without_hard_links_the_lock_falls_back_to_exclusive_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted", src)

    monkeypatch.setattr(os, "link", no_link)
    with RunLock(tmp_path) as lock:
        assert json.loads(Path(lock.path).read_text())["token"] == lock.owner["token"]
        with pytest.raises(DataError, match=f"in use by pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(params=["hard links", "no hard links"])
def no_flock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem without flock(2) (some FUSE and network mounts: ENOLCK), with or without hard links: the
    lock then rests on the pid check alone."""

    def flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    def no_link(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted", src)

    monkeypatch.setattr(fcntl, "flock", flock)
    if request.param == "no hard links":
        monkeypatch.setattr(os, "link", no_link)


def test_without_flock_a_dead_pid_on_this_host_is_taken_over(
    tmp_path: Path, no_flock: None, capsys: pytest.CaptureFixture
) -> None:
    pid = dead_pid()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    with RunLock(tmp_path) as lock:
        assert json.loads(Path(lock.path).read_text())["pid"] == os.getpid()
        with pytest.raises(DataError, match=f"in use by pid {os.getpid()}"):  # ours, alive: refused
            RunLock(tmp_path).acquire()
    assert f"taking over a stale lock from pid {pid}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_without_flock_a_live_pid_is_trusted_and_refuses(tmp_path: Path, no_flock: None) -> None:
    """Without flock nothing tells a live owner from a reused pid: a lock naming a running process is kept."""
    other = {"pid": os.getppid(), "host": socket.gethostname()}
    (tmp_path / LOCK_FILE).write_text(json.dumps(other))
    with pytest.raises(DataError, match=f"in use by pid {os.getppid()} on {socket.gethostname()}"):
        RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text()) == other
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead_pid(), "host": "some-other-vm"}))
    with pytest.raises(DataError, match="on some-other-vm"):  # another host's pid says nothing here
        RunLock(tmp_path).acquire()
