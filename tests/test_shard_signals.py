"""Ctrl-C and SIGTERM on `gopro-prep shard` with real signals to the whole process group, as a terminal sends them:
one line, exit 130/143, no hang, no traceback, and neither the lock nor the staging dir nor a worker left behind.

The moments are states of the run rather than delays, so a loaded machine moves them but cannot skip them: the lock
just taken (Beam building the pipeline), worker processes starting (Python importing Beam), shards being written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.interrupts import children_of

WAIT_S = 120.0  # for a state to be reached on a loaded machine; the run itself takes about 10 s unloaded


@pytest.fixture(scope="module")
def organized(tmp_path_factory) -> Path:
    from pipeline.config import OrganizeConfig
    from pipeline.organize import run
    from pipeline.sample import write_sample

    root = tmp_path_factory.mktemp("signals")
    write_sample(root / "raw", scenes=3, frames=2, size=(192, 128), seed=0)
    run(OrganizeConfig(raw=str(root / "raw"), out=str(root / "org"), blur="blur", link="copy"))
    (root / "png.yaml").write_text("shard:\n  encoding: png\n")
    return root / "org"


class Run:
    """`gopro-prep shard` in a new session (its own process group), stderr collected line by line."""

    def __init__(self, organized: Path, out: Path) -> None:
        cmd = [sys.executable, "-m", "pipeline.cli", "shard", "--config", str(organized.parent / "png.yaml"),
               "--src", str(organized), "--out", str(out), "--crop", "64", "--crops-per-pair", "600",
               "--shards", "2"]  # fmt: skip
        self.out = out
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, what: str, reached) -> None:
        deadline = time.monotonic() + WAIT_S
        while not reached():
            assert self.proc.poll() is None, f"shard ended before {what}: {self.lines}"
            assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s: {self.lines}"
            time.sleep(0.005)

    def staging_files(self) -> list[str]:
        parent = self.out.parent
        dirs = [parent / n for n in os.listdir(parent) if n.startswith(self.out.name + ".tmp-")]
        return [n for d in dirs if d.is_dir() for n in os.listdir(d) if n.startswith("gopro-")]

    def stop(self, signum: int) -> tuple[int, list[str]]:
        """Signal the process group; the exit code and the stderr lines that came after the signal."""
        before = len(self.lines)
        os.killpg(self.proc.pid, signum)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            pytest.fail(f"shard hung after {signal.Signals(signum).name}: {self.lines}")
        self._reader.join(timeout=30)
        return code, self.lines[before:]


def _moment(run: Run, moment: str) -> None:
    if moment == "pipeline":  # lock taken, staging dir made, Beam building the graph
        run.wait_for("start line", lambda: any(ln.startswith("shard: 6 pairs") for ln in run.lines))
    elif moment == "workers":  # SDK worker processes starting up
        run.wait_for("worker process", lambda: children_of(run.proc.pid, "pipeline.beam_runner"))
    else:  # shard files being written into the staging dir
        run.wait_for("shard file", lambda: run.staging_files())


def _group_gone(pgid: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, moment",
    [
        pytest.param(signal.SIGINT, "pipeline", id="SIGINT-pipeline"),
        pytest.param(signal.SIGINT, "workers", id="SIGINT-workers"),
        pytest.param(signal.SIGINT, "writing", id="SIGINT-writing"),
        pytest.param(signal.SIGTERM, "workers", id="SIGTERM-workers"),
        pytest.param(signal.SIGTERM, "writing", id="SIGTERM-writing"),
    ],
)
def test_signal_to_the_process_group_stops_cleanly(organized, tmp_path, signum, moment):
    out = tmp_path / "shards"
    run = Run(organized, out)
    _moment(run, moment)
    code, after = run.stop(signum)
    text = "\n".join(run.lines)
    assert code == 128 + signum, text
    said = [
        ln for ln in after if not ln.startswith("shard ")
    ]  # a worker's progress line may cross the signal
    assert said == ["interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"], text
    assert "Traceback" not in text and "Error" not in text and "Exception" not in text, text
    assert sorted(os.listdir(tmp_path)) == [], "lock, staging dir or OUT left behind"
    assert _group_gone(run.proc.pid), "a worker process outlived the command"
