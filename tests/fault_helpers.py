"""Real OS faults for the CLI fault tests: a full or read-only output disk, processes and their workers.

Tests run as root here and in CI, where permission bits stop nothing, so faults come from the kernel:
- a tiny or read-only tmpfs mounted in a private user+mount namespace (`unshare -rm`): ENOSPC / EROFS exactly as
  on a real disk, invisible to other processes and gone when the command ends (what it left is copied out first);
- where namespaces are not allowed (unprivileged containers), a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored):
  writes past the limit fail with EFBIG;
- a path under a regular file (ENOTDIR), which no privilege can write through.

And the plumbing every subprocess test shares, free of the usual flakes: waiting for a child's line with a
timeout (`read_until`, `rest_of`), releasing racing children at one instant (`start_together`), killing a child
when a condition holds (`kill_when`), and local multi-worker clusters that retry a taken port
(`run_local_cluster`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLI_TIMEOUT = 240
# The smallest fit that exercises everything: a step takes milliseconds, checkpoints and versions come often.
TINY_TRAIN = {
    "batch_size": 2,
    "crop_size": 32,
    "mixed_precision": "float32",
    "generator": {"filters": 4, "blocks": 1},
    "critic": {"filters": 4, "updates": 1},
    "loss": {"perceptual_weights": "none"},
    "checkpoint_every": 2,
    "version_every": 2,
    "keep_versions": 50,
    "log_every": 1,
}

# $1 disk, $2 tmpfs options, $3 ro|rw, $4 where to copy what is left, $5 seed dir or "", then the command.
_IN_NAMESPACE = r"""
disk="$1"; opts="$2"; mode="$3"; keep="$4"; seed="$5"; shift 5
mount -t tmpfs -o "$opts" gopro-test "$disk" || exit 97
if [ -n "$seed" ]; then cp -a "$seed/." "$disk/" || exit 98; fi
if [ "$mode" = ro ]; then mount -o remount,ro "$disk" || exit 99; fi
"$@"; rc=$?
cp -a "$disk/." "$keep/"
exit $rc
"""


def env() -> dict[str, str]:
    return {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(ROOT),
        "GOPRO_DEBUG": "",
    }


def gopro_prep(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def trainctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "train.cli", *args]


def run(cmd: list[str], timeout: float = CLI_TIMEOUT, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout, **kwargs)


@functools.cache
def namespace_mounts() -> str | None:
    """None when `unshare -rm` can mount a tmpfs here, else why not (the reason a test is skipped with)."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return "no unshare(1) on this system"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            done = subprocess.run(
                ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k gopro-test "$0"', tmp],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unshare -rm failed: {exc}"
    if done.returncode:
        return f"unshare -rm + mount tmpfs not allowed here: {done.stderr.strip()[:200]}"
    return None


@dataclass
class Outcome:
    """A finished command and what it left on its output disk (`left` mirrors `disk`, the path it was given)."""

    returncode: int
    stderr: str
    disk: Path
    left: Path

    def leftover(self, path: Path) -> Path:
        """Where `path` (under `disk`) can be inspected now."""
        return self.left / path.relative_to(self.disk)


def run_on_tmpfs(
    cmd: list[str], tmp: Path, size: str, readonly: bool = False, seed: Path | None = None
) -> Outcome:
    """Run `cmd` with `tmp/disk` a private tmpfs of `size` (read-only after `seed` is copied in when asked)."""
    disk, left = tmp / "disk", tmp / "left"
    disk.mkdir()
    left.mkdir()
    args = [str(disk), f"size={size}", "ro" if readonly else "rw", str(left), str(seed or "")]
    done = run(["unshare", "-rm", "sh", "-c", _IN_NAMESPACE, "sh", *args, *cmd])
    assert done.returncode not in (97, 98, 99), f"namespace setup failed: {done.stderr}"
    return Outcome(done.returncode, done.stderr, disk, left)


def run_with_file_limit(cmd: list[str], tmp: Path, limit: int, seed: Path | None = None) -> Outcome:
    """Run `cmd` with `tmp/disk` as output dir and no file allowed past `limit` bytes (EFBIG, like a full disk)."""
    disk = tmp / "disk"
    if seed is not None:
        shutil.copytree(seed, disk)
    disk.mkdir(exist_ok=True)

    def limit_files() -> None:
        signal.signal(
            signal.SIGXFSZ, signal.SIG_IGN
        )  # else the kernel kills the writer instead of failing it
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = run(cmd, preexec_fn=limit_files)
    return Outcome(done.returncode, done.stderr, disk, disk)


def run_full_disk(how: str, cmd: list[str], tmp: Path, size: int, seed: Path | None = None) -> Outcome:
    """`how` = "tmpfs" (a `size`-byte disk) or "file-limit" (files capped at `size` bytes). `cmd` may hold the
    placeholder "DISK" for the output disk's path."""
    disk = tmp / "disk"
    cmd = [a.replace("DISK", str(disk)) for a in cmd]
    if how == "tmpfs":
        return run_on_tmpfs(cmd, tmp, str(size), seed=seed)
    return run_with_file_limit(cmd, tmp, size, seed=seed)


def error_line(stderr: str, under: Path, leading: bool = True) -> str:
    """The one `error: PATH: reason` line of a failed command, with PATH under `under` (anywhere in the line
    unless `leading`). No traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    prefix = "error: " if leading else "error: .*"
    assert re.match(rf"{prefix}{re.escape(str(under))}([/: ]|$)", errors[0]), errors[0]
    return errors[0]


def files_under(root: Path) -> list[str]:
    """Every file and dir below `root`, relative, sorted (hidden ones too)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def manifest_names_only_existing_files(organized: Path) -> bool:
    """True when organized/manifest.jsonl is absent, or every A/B file it names exists."""
    manifest = organized / "manifest.jsonl"
    if not manifest.exists():
        return True
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return all((organized / row[side]).is_file() for row in rows for side in ("a", "b"))


# ---- processes -------------------------------------------------------------------------------------------------


def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _ppid_and_state(int(entry))
            if info:
                children.setdefault(info[0], []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    info = _ppid_and_state(pid)
    return info is not None and info[1] not in ("Z", "X")  # zombies have finished


def wait_until_gone(pids: list[int], timeout: float = 60) -> list[int]:
    """Wait for `pids` to exit; returns those still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


class _Lines:
    """One text stream of a child, read line by line on a daemon thread: waiting for a line can then time out
    (a bare `readline()` blocks for as long as a hung child stays silent), and the pipe never fills up while the
    test does something else."""

    def __init__(self, stream: Any) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream: Any) -> None:
        try:
            for line in iter(stream.readline, ""):
                self.queue.put(line)
        except (OSError, ValueError):  # closed under us
            pass
        finally:
            self.queue.put(None)  # end of stream

    def next(self, deadline: float) -> str | None:
        """The next line; None at the end of the stream (and on every later call); TimeoutError at `deadline`."""
        try:
            line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError from None
        if line is None:
            self.queue.put(None)
        return line


_READERS: weakref.WeakKeyDictionary[subprocess.Popen, dict[str, _Lines]] = weakref.WeakKeyDictionary()


def _lines(proc: subprocess.Popen, stream: str) -> _Lines:
    readers = _READERS.setdefault(proc, {})
    if stream not in readers:
        readers[stream] = _Lines(getattr(proc, stream))
    return readers[stream]


def read_until(
    proc: subprocess.Popen, done: Callable[[str], bool], timeout: float = 120, stream: str = "stderr"
) -> list[str]:
    """Read `proc`'s `stream` (a text pipe) line by line until `done(line)`; returns the lines read. If that line
    does not come within `timeout` seconds (a silent hang included) or the stream ends first, kill `proc` and
    fail with what it said."""
    lines, reader, deadline = [], _lines(proc, stream), time.monotonic() + timeout
    try:
        while (line := reader.next(deadline)) is not None:
            lines.append(line)
            if done(line):
                return lines
        why = "the stream ended"
    except TimeoutError:
        why = f"nothing matched within {timeout:g} s"
    proc.kill()
    raise AssertionError(f"the awaited line never came ({why}):\n" + "".join(lines))


def read_stderr_until(proc: subprocess.Popen, done: Callable[[str], bool], timeout: float = 120) -> list[str]:
    """`read_until` on stderr."""
    return read_until(proc, done, timeout, "stderr")


def rest_of(proc: subprocess.Popen, timeout: float = 120, stream: str = "stderr") -> str:
    """Wait for `proc` to exit and return what its `stream` said since the last `read_until` (all of it if none
    ran); kill it and fail if it runs past `timeout` seconds."""
    reader = _lines(proc, stream)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"pid {proc.pid} still running after {timeout:g} s") from None
    lines, deadline = [], time.monotonic() + 30  # a grandchild may hold the pipe a moment longer
    try:
        while (line := reader.next(deadline)) is not None:
            lines.append(line)
    except TimeoutError:
        pass
    return "".join(lines)


def start_together(procs: list[subprocess.Popen], timeout: float = 120) -> list[str]:
    """For children that print `ready` and then wait for a line on stdin (text pipes): once every one is ready,
    send each its line and return the next line each prints. Released this way they race each other within
    microseconds, however long each took to start (no start time guessed ahead)."""
    for p in procs:
        read_until(p, lambda line: line.strip() == "ready", timeout, "stdout")
    for p in procs:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
    return [read_until(p, lambda line: True, timeout, "stdout")[-1].strip() for p in procs]


def race(script: str, arg: str, count: int) -> list[str]:
    """Run `count` copies of `script` (python -c, with `arg`) released together (`start_together`), then close
    and reap them; the first word each printed, sorted (e.g. ["held", "refused"])."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, arg],
            cwd=ROOT,
            env=env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        return sorted(line.split(" ", 1)[0] for line in start_together(procs))
    finally:
        close_and_reap(procs)


def close_and_reap(procs: list[subprocess.Popen], timeout: float = 60) -> None:
    """Close each child's stdin (a child holding something until then lets go) and wait for all; kill any
    still running after `timeout` seconds."""
    for p in procs:
        if p.stdin is not None and not p.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                p.stdin.close()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=60)


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 180) -> None:
    """SIGKILL `proc` as soon as `ready()` holds (polled every 2 ms), or at `timeout`; then reap it."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()


# ---- local multi-worker clusters -------------------------------------------------------------------------------

# What a worker prints when its gRPC server cannot bind the port TF_CONFIG gave it.
PORT_TAKEN = "Could not start gRPC server"


@dataclass
class Worker:
    """A finished worker of a local cluster: its pid (in its files' names), exit status and stderr."""

    pid: int
    returncode: int
    stderr: str


def _ephemeral_range() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def cluster_ports(n: int) -> list[int]:
    """`n` distinct ports that are free now, drawn at random outside the kernel's ephemeral range: the kernel
    never hands those out for outgoing connections (the workers' own gRPC clients included), so only another
    listener can take one before the worker binds it, which `run_local_cluster` notices and retries."""
    import random
    import socket

    ephemeral, rng, ports = _ephemeral_range(), random.SystemRandom(), []
    candidates = [p for p in range(10_000, 30_000) if p not in ephemeral] or list(range(10_000, 30_000))
    for port in rng.sample(candidates, len(candidates)):
        with socket.socket() as s:  # TF's server binds 0.0.0.0:port: check the same address
            try:
                s.bind(("", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise AssertionError(f"no {n} free ports for a local cluster")


def run_local_cluster(
    command: Callable[[int], list[str]],
    logs: Path,
    workers: int = 2,
    timeout: float = CLI_TIMEOUT,
    attempts: int = 3,
) -> list[Worker]:
    """Run `command(i)` as worker i of a MultiWorkerMirroredStrategy cluster on 127.0.0.1 (TF_CONFIG) until all
    exit; one that fails stops the others (they would wait for it forever). Stderr goes to files under `logs`
    (no pipe to fill, no line to wait for). A cluster whose server could not bind its port (taken by another
    process since `cluster_ports` chose it) is started again on fresh ports, up to `attempts` times."""
    logs.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        hosts = [f"127.0.0.1:{port}" for port in cluster_ports(workers)]
        procs, paths = [], []
        for i in range(workers):
            tf_config = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})
            paths.append(logs / f"attempt{attempt}-worker{i}.stderr")
            with paths[-1].open("w") as err:
                procs.append(
                    subprocess.Popen(
                        command(i),
                        cwd=ROOT,
                        env={**env(), "TF_CONFIG": tf_config},
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                )
        deadline = time.monotonic() + timeout
        try:
            while any(p.poll() is None for p in procs):
                if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
                    break
                time.sleep(0.05)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait(timeout=60)
        done = [Worker(p.pid, p.returncode, path.read_text()) for p, path in zip(procs, paths, strict=True)]
        if not any(PORT_TAKEN in w.stderr for w in done):
            return done
    return done  # still no port after `attempts` tries: the caller's returncode check shows why
