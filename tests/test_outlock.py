"""One organize or shard per OUT: `PARENT/.NAME.lock` refuses a second writer, naming the first (pid, host);
a killed run's lock is taken over; a remote OUT gets the write-then-verify lock through Beam FileSystems."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import memfs
import pytest
from fault_helpers import (
    ROOT,
    env,
    error_line,
    gopro_prep,
    kill_when,
    manifest_names_only_existing_files,
    run,
)
from shard_helpers import IN_PROCESS, shard_cfg

from pipeline import dirlock, fsio, publish, shard
from pipeline.config import OrganizeConfig
from pipeline.dirlock import OutputLock, lock_path
from pipeline.errors import DataError
from pipeline.organize import run as organize
from pipeline.sample import write_sample

HOST = socket.gethostname()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def empty_store():
    memfs.OBJECTS.clear()
    yield
    memfs.OBJECTS.clear()


@pytest.fixture
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dirlock, "REMOTE_SETTLE_S", 0.01)


@pytest.fixture(scope="module")
def no_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "pipeline.yaml"
    path.write_text("")
    return path


def test_the_lock_lives_beside_out_and_every_spelling_shares_it(tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir()
    (tmp_path / "shards").symlink_to(tmp_path / "disk")
    assert lock_path(str(tmp_path / "disk")) == str(tmp_path / ".disk.lock")
    assert lock_path(str(tmp_path / "shards") + "/") == str(tmp_path / ".disk.lock")
    assert lock_path("memfs://bkt/data/shards/") == "memfs://bkt/data/.shards.lock"


def test_a_second_writer_is_refused_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "organized"
    with OutputLock(str(out), "organize") as lock:
        owner = json.loads(Path(lock.path).read_text())
        assert (owner["pid"], owner["host"], owner["command"]) == (os.getpid(), HOST, "gopro-prep organize")
        with pytest.raises(DataError) as info:
            organize(OrganizeConfig(raw=str(tmp_path / "raw"), out=str(out)))
        assert str(info.value) == (
            f"{tmp_path / '.organized.lock'}: {out} is being written by gopro-prep organize (pid {os.getpid()} "
            f"on {HOST}); wait for it to finish or choose another --out (delete the lock file only if that run "
            "is gone)"
        )
        assert info.value.exit_code == 1
    assert os.listdir(tmp_path) == []


def test_shard_is_refused_before_anything_is_written(organized_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    with (
        OutputLock(str(out), "shard"),
        pytest.raises(DataError, match=f"is being written by gopro-prep shard \\(pid {os.getpid()}"),
    ):
        shard.run(shard_cfg(organized_dir, out), beam_args=IN_PROCESS)
    assert os.listdir(tmp_path) == []


def test_a_stale_lock_is_taken_over_and_another_hosts_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, pid = str(tmp_path / "out"), dead_pid()
    Path(lock_path(out)).write_text(json.dumps({"pid": pid, "host": HOST, "command": "gopro-prep shard"}))
    with OutputLock(out, "organize") as lock:
        assert json.loads(Path(lock.path).read_text())["pid"] == os.getpid()
    assert f"taking over a stale lock from pid {pid} (no longer running)" in capsys.readouterr().err
    Path(lock_path(out)).write_text(json.dumps({"pid": pid, "host": "vm-2", "command": "gopro-prep shard"}))
    with pytest.raises(DataError, match=r"by gopro-prep shard \(pid \d+ on vm-2\)"):
        OutputLock(out, "organize").acquire()


# ---- remote OUT (memfs://, an object store in memory) ---------------------------------------------------------


def test_remote_lock_refuses_a_second_writer_and_takes_over_a_stale_one(
    empty_store: None, quick_settle: None, capsys: pytest.CaptureFixture
) -> None:
    out, path = "memfs://bkt/shards", "memfs://bkt/.shards.lock"
    with OutputLock(out, "shard"):
        assert json.loads(memfs.OBJECTS[path])["pid"] == os.getpid()
        with pytest.raises(
            DataError, match=f"{path}: {out} is being written by gopro-prep shard \\(pid {os.getpid()}"
        ):
            OutputLock(out, "shard").acquire()
    assert path not in memfs.OBJECTS
    pid = dead_pid()
    fsio.write_bytes(path, json.dumps({"pid": pid, "host": HOST, "token": "old"}).encode())
    with OutputLock(out, "shard"):
        assert json.loads(memfs.OBJECTS[path])["pid"] == os.getpid()
    assert f"taking over a stale lock from pid {pid}" in capsys.readouterr().err
    assert memfs.OBJECTS == {}


def test_remote_lock_lost_in_the_settle_window_is_refused(
    empty_store: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No exclusive create on object stores: of two runs that both saw no lock and both wrote it, the one whose
    token did not stay refuses and leaves the winner's lock alone."""
    path = "memfs://bkt/.shards.lock"
    winner = json.dumps(
        {"pid": 4242, "host": "vm-2", "token": "theirs", "command": "gopro-prep shard"}
    ).encode()
    monkeypatch.setattr(dirlock.time, "sleep", lambda s: memfs.OBJECTS.__setitem__(path, winner))
    with pytest.raises(DataError, match=r"is being written by gopro-prep shard \(pid 4242 on vm-2\)"):
        OutputLock("memfs://bkt/shards", "shard").acquire()
    assert memfs.OBJECTS[path] == winner


def test_shard_that_lost_its_remote_lock_publishes_nothing(
    organized_dir: Path, empty_store: None, quick_settle: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked again before publishing: a run whose lock another writer took over meanwhile leaves OUT to it."""
    out, path = "memfs://bkt/shards", "memfs://bkt/.shards.lock"
    intruder = json.dumps(
        {"pid": 7, "host": "vm-2", "token": "theirs", "command": "gopro-prep shard"}
    ).encode()
    prepare = publish.prepare

    def prepare_then_lose_the_lock(*args, **kwargs):
        staging = prepare(*args, **kwargs)
        memfs.OBJECTS[path] = intruder
        return staging

    monkeypatch.setattr(publish, "prepare", prepare_then_lose_the_lock)
    with pytest.raises(DataError, match=r"taken over by gopro-prep shard \(pid 7 on vm-2\) during this run"):
        shard.run(shard_cfg(organized_dir, out), beam_args=IN_PROCESS)
    assert list(memfs.OBJECTS) == [path] and memfs.OBJECTS[path] == intruder


# ---- real processes --------------------------------------------------------------------------------------------

# Imports first, then a barrier on files (each process writes its own and waits for all), so that both commands
# start within a millisecond of each other however long the imports took.
TOGETHER = """
import os, sys, time
import pipeline.organize, pipeline.shard
from pipeline.cli import app
barrier, parties = sys.argv[1], int(sys.argv[2])
open(os.path.join(barrier, str(os.getpid())), "w").close()
while len(os.listdir(barrier)) < parties:
    time.sleep(0.0005)
sys.argv = ["gopro-prep", *sys.argv[3:]]
app()
"""


def start_together(tmp: Path, *commands: list[str]) -> tuple[list[subprocess.CompletedProcess], list[int]]:
    """Run `gopro-prep` commands released at the same moment; their results and pids."""
    barrier = tmp / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TOGETHER, str(barrier), str(len(commands)), *cmd],
            cwd=ROOT,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for cmd in commands
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    shutil.rmtree(barrier)
    done = [
        subprocess.CompletedProcess(p.args, p.returncode, o, e) for p, (o, e) in zip(procs, outs, strict=True)
    ]
    return done, [p.pid for p in procs]


def one_winner(results: list[subprocess.CompletedProcess], pids: list[int], under: Path) -> int:
    """Index of the run that exited 0, asserting the other exited 1 with one line naming its pid and host."""
    assert sorted(r.returncode for r in results) == [0, 1], [(r.returncode, r.stderr) for r in results]
    winner = [r.returncode for r in results].index(0)
    line = error_line(results[1 - winner].stderr, under)
    assert f"(pid {pids[winner]} on {HOST})" in line, line
    return winner


@pytest.mark.slow
def test_two_organizes_started_together_one_is_refused(tmp_path: Path, no_config: Path) -> None:
    """Before the lock, one died on the other's temp name (`A/.X.png.tmp-organize: No such file`) or both
    finished, leaving a mix of blur sources."""
    raw, out = tmp_path / "raw", tmp_path / "organized"
    write_sample(raw, scenes=4, frames=6, size=(64, 48), seed=3)
    blurs = ["blur", "blur_gamma"]
    results, pids = start_together(
        tmp_path,
        *[["organize", "--raw", str(raw), "--out", str(out), "--blur", b, "--verify", "--config", str(no_config)]
          for b in blurs],
    )  # fmt: skip
    winner = one_winner(results, pids, tmp_path)
    assert "is being written by gopro-prep organize" in results[1 - winner].stderr
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {r["blur"] for r in rows} == {blurs[winner]}
    assert manifest_names_only_existing_files(out)
    assert sorted(os.listdir(tmp_path)) == ["organized", "raw"]


@pytest.mark.slow
def test_two_shards_started_together_one_is_refused(
    organized_dir: Path, tmp_path: Path, no_config: Path
) -> None:
    """Before the lock both exited 0 and both said they published OUT, which held the second's dataset."""
    out = tmp_path / "shards"
    seeds = ["0", "5"]
    results, pids = start_together(
        tmp_path,
        *[["shard", "--src", str(organized_dir), "--out", str(out), "--crop", "32", "--seed", seed,
           "--config", str(no_config), "--", *IN_PROCESS] for seed in seeds],
    )  # fmt: skip
    winner = one_winner(results, pids, tmp_path)
    assert "is being written by gopro-prep shard" in results[1 - winner].stderr
    assert json.loads((out / "dataset.json").read_text())["seed"] == int(seeds[winner])
    assert sorted(os.listdir(tmp_path)) == ["shards"]


@pytest.mark.slow
def test_a_killed_organize_leaves_a_lock_the_next_run_takes_over(tmp_path: Path, no_config: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "organized"
    write_sample(raw, scenes=4, frames=6, size=(64, 48), seed=3)
    args = ["organize", "--raw", str(raw), "--out", str(out), "--verify", "--config", str(no_config)]
    proc = subprocess.Popen(gopro_prep(*args), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    lock = tmp_path / ".organized.lock"
    kill_when(proc, lock.exists)
    assert json.loads(lock.read_text())["pid"] == proc.pid
    rerun = run(gopro_prep(*args))
    assert rerun.returncode == 0, rerun.stderr
    assert f"notice: {lock}: taking over a stale lock from pid {proc.pid} (no longer running)" in rerun.stderr
    assert not lock.exists() and len((out / "manifest.jsonl").read_text().splitlines()) == 24
