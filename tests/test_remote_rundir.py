"""A run dir on an object store: fit, resume, versions, lock, evaluate, deblur and export through tf.io.gfile.

TensorFlow's `ram://` filesystem stands in for gs:// in-process: it is reached only through tf.io.gfile, like
GCS, so a stray `open()`/`os.replace` on a run-dir path fails here as it would on a bucket. For real processes
(a SIGKILL mid-version, two fits racing for the lock) `file://` URLs take the same remote code path on local disk.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
import yaml
from fault_helpers import ROOT, TINY_TRAIN, env, kill_when, race, run, trainctl
from shards_fixture import write_shards
from tiny_generators import local_generator

from pipeline import dirlock
from pipeline.config import load_config
from pipeline.errors import DataError, UsageError
from train.config import Config
from train.evaluation import evaluate
from train.fit.trainer import run as fit
from train.inference import export, files
from train.inference.deblurrer import Deblurrer
from train.run import rundir, runlock, versions

gfile = tf.io.gfile
TINY = {**TINY_TRAIN, "keep_versions": 2}


def ram_dir() -> str:
    return f"ram://gopro-{uuid.uuid4().hex[:8]}/run"


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shards(tmp_path_factory.mktemp("remote") / "shards", pairs=4, crop_size=40, crops_per_pair=2)


def tiny(shards: Path, run_dir: str, **train: object) -> Config:
    return Config.model_validate({"train": {**TINY, "data": str(shards), "run_dir": run_dir, **train}})


def weights(model: object) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]  # type: ignore[attr-defined]


# ---- the file layer -------------------------------------------------------------------------------------------


def test_rundir_reads_writes_lists_and_deletes_through_gfile() -> None:
    root = ram_dir()
    rundir.write_json(rundir.join(root, "a", "run.json"), {"step": 3})
    rundir.write_bytes(rundir.join(root, "a", "latest"), b"v0002\n")
    rundir.write_png(rundir.join(root, "samples", "s.png"), np.full((4, 5, 3), 7, np.uint8))
    assert json.loads(rundir.read_text(rundir.join(root, "a", "run.json"))) == {"step": 3}
    assert rundir.listdir(root) == ["a", "samples"] and rundir.listdir(rundir.join(root, "nope")) == []
    assert rundir.glob(rundir.join(root, "a"), "l*") == [f"{root}/a/latest"]
    assert rundir.isfile(f"{root}/a/latest") and not rundir.isfile(f"{root}/a") and rundir.isdir(f"{root}/a")
    png = np.frombuffer(rundir.read_bytes(f"{root}/samples/s.png"), np.uint8)
    assert cv2.imdecode(png, cv2.IMREAD_COLOR).shape == (4, 5, 3)
    with pytest.raises(FileNotFoundError, match=f"{root}/a/missing"):
        rundir.read_text(f"{root}/a/missing")
    rundir.remove(f"{root}/a/latest")
    rundir.remove(f"{root}/a/latest")  # missing: not an error
    rundir.rmtree(f"{root}/a")
    rundir.rmtree(f"{root}/a")
    assert rundir.listdir(root) == ["samples"] and rundir.name(f"{root}/samples/s.png") == "s.png"


def test_an_unreachable_store_is_an_error_naming_the_path_not_an_empty_dir() -> None:
    """tf.io.gfile.listdir/isdir report any error (no network, 403, unknown scheme) as "not a directory": a run
    dir that cannot be read looked empty, and the next version was numbered v0001 over an existing one."""
    root = "nosuch://bucket/run"
    for probe in (rundir.listdir, rundir.isdir, rundir.exists, versions.next_version_number):
        with pytest.raises(DataError, match=f"^{root}.*: cannot read .*scheme 'nosuch' not implemented"):
            probe(root)
    with pytest.raises(DataError, match=f"^{root}: cannot create the directory"):
        rundir.write_bytes(f"{root}/x", b"")
    rundir.discard(root)  # best effort: never raises


def test_file_urls_are_replaced_whole(tmp_path: Path) -> None:
    """file:// and ram:// write in place through gfile (ram:// even appends to a reopened file), so a file is
    written aside and renamed over: a kill mid-write cannot leave `latest` or meta.json truncated."""
    for root in (f"file://{tmp_path}/run", ram_dir()):
        for data in (b"first version\n", b"2nd\n"):
            rundir.write_bytes(f"{root}/latest", data)
            assert rundir.read_bytes(f"{root}/latest") == data and rundir.listdir(root) == ["latest"]
    assert (tmp_path / "run" / "latest").read_bytes() == b"2nd\n"


# ---- versions -------------------------------------------------------------------------------------------------


def test_remote_versions_count_only_with_meta_and_a_killed_writer_is_cleaned_up() -> None:
    root = ram_dir()
    g1, g2 = local_generator(seed=1), local_generator(seed=2)
    v1 = versions.write_version(root, g1, {"step": 10})
    assert v1 == f"{root}/generator/v0001"
    # A writer killed after the model and before meta.json: not a version, and its number is not reused.
    rundir.makedirs(f"{root}/generator/v0002")
    g2.save(f"{root}/generator/v0002/generator.keras")
    assert [v.name for v in versions.list_versions(root)] == ["v0001"]
    assert versions.resolve_version(root, "latest") == v1
    v3 = versions.write_version(root, g2, {"step": 20})
    assert rundir.listdir(f"{root}/generator") == ["latest", "v0001", "v0003"]
    assert rundir.read_text(f"{root}/generator/latest") == "v0003\n"
    for got, want in zip(weights(versions.load_generator(v3)), weights(g2), strict=True):
        np.testing.assert_array_equal(got, want)
    versions.update_metrics(v1, {"psnr": 30.0, "split": "test", "src": "o"})
    assert versions.read_meta(v1)["metrics"] == {"test @ o": {"psnr": 30.0, "split": "test", "src": "o"}}
    assert versions.resolve_version(root, "best") == v1
    # Pruning to 1 keeps latest (v0003) and best (v0001); a third version then retires v0003.
    assert versions.prune_versions(root, keep=1) == []
    versions.write_version(root, g1, {"step": 30}, keep=2)
    assert [v.name for v in versions.list_versions(root)] == ["v0001", "v0004"]
    assert not gfile.exists(f"{root}/generator/v0003")
    # `trainctl evaluate` updating a version that a fit prunes meanwhile leaves meta.json alone: not a version,
    # and the next writer deletes it.
    rundir.write_json(f"{root}/generator/v0003/meta.json", {"step": 20})
    assert [v.name for v in versions.list_versions(root)] == ["v0001", "v0004"]
    assert versions.remove_incomplete(root) == ["v0003"]
    rows = versions.table_rows(root)
    assert [(r[0], r[1], r[-1]) for r in rows] == [("v0001", "10", "best"), ("v0004", "30", "latest")]


# ---- the lock -------------------------------------------------------------------------------------------------


@pytest.fixture
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dirlock, "REMOTE_SETTLE_S", 0.01)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_remote_lock_refuses_a_second_fit_and_takes_over_a_stale_one(
    quick_settle: None, capsys: pytest.CaptureFixture
) -> None:
    root = ram_dir()
    path = f"{root}/{runlock.LOCK_FILE}"
    with runlock.RunLock(root):
        assert json.loads(rundir.read_text(path))["pid"] == os.getpid()
        with pytest.raises(DataError, match=f"{path}: run dir is in use by pid {os.getpid()}"):
            runlock.RunLock(root).acquire()
    assert not gfile.exists(path)
    pid = dead_pid()
    rundir.write_json(path, {"pid": pid, "host": socket.gethostname(), "token": "old"})
    with runlock.RunLock(root):
        assert json.loads(rundir.read_text(path))["pid"] == os.getpid()
    assert f"taking over a stale lock from pid {pid}" in capsys.readouterr().err
    rundir.write_json(path, {"pid": pid, "host": "some-other-vm", "token": "old"})
    with pytest.raises(DataError, match="on some-other-vm"):
        runlock.RunLock(root).acquire()
    assert json.loads(rundir.read_text(path))["host"] == "some-other-vm"


def test_remote_lock_lost_to_a_writer_in_the_settle_window_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No exclusive create on object stores: two fits that both saw no lock both write it; the one whose token
    did not stay must refuse, and leave the winner's lock alone."""
    root = ram_dir()
    path = f"{root}/{runlock.LOCK_FILE}"
    winner = {"pid": 4242, "host": "other-vm", "token": "theirs"}
    monkeypatch.setattr(dirlock.time, "sleep", lambda s: rundir.write_json(path, winner))
    with pytest.raises(DataError, match=f"{path}: run dir is in use by pid 4242 on other-vm"):
        runlock.RunLock(root).acquire()
    assert json.loads(rundir.read_text(path)) == winner


def test_a_remote_lock_taken_over_later_stops_the_first_fit(quick_settle: None) -> None:
    """Checked at every checkpoint: a fit whose lock now holds another token stops, and does not delete it."""
    root = ram_dir()
    path = f"{root}/{runlock.LOCK_FILE}"
    lock = runlock.RunLock(root)
    lock.acquire()
    lock.verify()
    intruder = {"pid": 7, "host": "vm-2", "token": "theirs"}
    rundir.write_json(path, intruder)
    with pytest.raises(DataError, match=f"{path}: the run dir lock was taken over by pid 7 on vm-2"):
        lock.verify()
    lock.release()
    assert json.loads(rundir.read_text(path)) == intruder


def test_a_remote_lock_from_another_pid_namespace_is_not_judged_by_pid(quick_settle: None) -> None:
    """A container restarted under the same host name gets a new pid namespace: the old pids mean nothing here
    (pid 1 is alive in every container), so the lock is refused, not taken over, and not believed live either."""
    root = ram_dir()
    path = f"{root}/{runlock.LOCK_FILE}"
    other = {"pid": dead_pid(), "host": socket.gethostname(), "pidns": 1, "token": "old"}
    rundir.write_json(path, other)
    with pytest.raises(DataError, match=f"in use by pid {other['pid']} on {socket.gethostname()}"):
        runlock.RunLock(root).acquire()
    assert json.loads(rundir.read_text(path)) == other


RACE = """
import sys
from pipeline.errors import DataError, UsageError
from pipeline import dirlock
from train.run import rundir, runlock
dirlock.REMOTE_SETTLE_S = 0.5
rundir.exists(sys.argv[1])  # TensorFlow imported before the start line, not inside the race
print("ready", flush=True)
sys.stdin.readline()  # every racer is released at once
try:
    lock = runlock.RunLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.read()  # hold it until the test has both answers
    lock.release()
except DataError as exc:
    print("refused", exc, flush=True)
"""


@pytest.mark.slow
def test_two_processes_racing_for_a_remote_lock_one_wins(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/run"
    outs = race(RACE, url, 2)
    assert outs == ["held", "refused"]
    assert not (tmp_path / "run" / runlock.LOCK_FILE).exists()


# ---- fit, resume, evaluate, deblur, export on ram:// ----------------------------------------------------------


@pytest.mark.slow
def test_fit_on_a_remote_run_dir_resumes_exactly_and_serves(
    shards: Path, tmp_path: Path, organized_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dirlock, "REMOTE_SETTLE_S", 0.01)
    root = ram_dir()
    first = fit(tiny(shards, root, steps=2))
    resumed = fit(tiny(shards, root, steps=4))
    local = fit(tiny(shards, str(tmp_path / "local"), steps=4))
    assert (first.step, resumed.step, local.step) == (2, 4, 4)
    for got, want in zip(weights(resumed.generator), weights(local.generator), strict=True):
        np.testing.assert_array_equal(got, want)  # 2 + 2 steps through gfile == 4 steps on disk

    assert tf.train.latest_checkpoint(f"{root}/checkpoints") == f"{root}/checkpoints/ckpt-4"
    assert [v.name for v in versions.list_versions(root)] == ["v0001", "v0002"]
    assert rundir.read_text(f"{root}/generator/latest") == "v0002\n"
    assert rundir.listdir(f"{root}/samples") == ["step_000002.png", "step_000004.png"]
    assert any(n.startswith("events.out.tfevents") for n in rundir.listdir(f"{root}/logs"))
    assert json.loads(rundir.read_text(f"{root}/run.json"))["data"]["batch_size"] == 2
    assert runlock.LOCK_FILE not in rundir.listdir(root)

    cfg_path = tmp_path / "pipeline.yaml"
    cfg_path.write_text(yaml.safe_dump({"train": {"run_dir": root}, "evaluate": {"src": str(organized_dir)}}))
    result = evaluate.run(load_config(cfg_path), split="test", out=f"{root}/eval.json")
    assert result["version"] == "v0002" and result["pairs"] == 3
    scores = versions.read_meta(f"{root}/generator/v0002")["metrics"]
    assert scores[f"test @ {organized_dir}"]["psnr"] == result["psnr"]
    assert json.loads(rundir.read_text(f"{root}/eval.json")) == result

    image = next((organized_dir / "test" / "A").glob("*.png"))
    deblurrer = Deblurrer(f"{root}/generator/v0002")
    with pytest.raises(UsageError, match="gs://b/out: deblur reads and writes local files"):
        files.run(deblurrer, [image], "gs://b/out")
    assert files.run(deblurrer, [image], tmp_path / "out") == 0
    deblurred = cv2.imread(str(tmp_path / "out" / image.name), cv2.IMREAD_COLOR)
    assert deblurred.shape == cv2.imread(str(image)).shape

    out = f"{root}/export"
    export.run(f"{root}/generator/v0002", out)
    export.run(f"{root}/generator/v0002", out)  # an earlier export at the same path is replaced
    served = tf.saved_model.load(out).signatures["serving_default"]
    frame = cv2.cvtColor(deblurred, cv2.COLOR_BGR2RGB)[:37, :50]
    got = served(images=tf.constant(frame[None]))["deblurred"].numpy()
    assert got.shape == (1, 37, 50, 3) and got.dtype == np.uint8
    assert json.loads(rundir.read_text(f"{out}/meta.json"))["version"] == "v0002"

    # An upload cut short leaves no half export a loader would take, and the next export replaces it.
    copy, calls = tf.io.gfile.copy, []

    def failing_copy(src: str, dst: str, overwrite: bool = False) -> None:
        calls.append(dst)
        if len(calls) == 3:
            raise tf.errors.UnavailableError(None, None, "connection reset")
        copy(src, dst, overwrite=overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", failing_copy)
    with pytest.raises(DataError, match=f"{out}/.*: cannot write .*connection reset"):
        export.run(f"{root}/generator/v0002", out)
    assert not gfile.exists(f"{out}/saved_model.pb")
    monkeypatch.setattr(tf.io.gfile, "copy", copy)
    export.run(f"{root}/generator/v0002", out)
    assert "serving_default" in tf.saved_model.load(out).signatures
    rundir.rmtree(root)


# ---- real processes on a file:// URL --------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_killed_mid_version_on_an_object_store_lists_only_complete_versions(
    shards: Path, tmp_path: Path
) -> None:
    """Versions on a remote run dir are written in place with meta.json last. A fit SIGKILLed while it writes
    them leaves at most one vNNNN without meta.json: never listed, never `latest`, deleted by the rerun."""
    run_dir = tmp_path / "run"
    url = f"file://{run_dir}"
    cfg = tmp_path / "fit.yaml"
    train = {**TINY, "data": str(shards), "run_dir": url, "steps": 100_000, "version_every": 1}
    cfg.write_text(yaml.safe_dump({"train": {**train, "checkpoint_every": 3, "keep_versions": 3}}))
    first = subprocess.Popen(trainctl("fit", str(cfg)), cwd=ROOT, env=env(), stderr=subprocess.DEVNULL)
    generator = run_dir / "generator"

    def half_written() -> bool:  # a version without its meta.json
        dirs = list(generator.glob("v*"))
        return len(dirs) >= 4 and any(not (d / "meta.json").exists() for d in dirs)

    kill_when(first, half_written)
    listed = [v.name for v in versions.list_versions(url)]
    assert listed and all((generator / n / "meta.json").is_file() for n in listed)
    assert rundir.read_text(f"{url}/generator/latest").strip() in listed
    incomplete = [d.name for d in generator.glob("v*") if not (d / "meta.json").exists()]
    assert len(incomplete) <= 1 and not set(incomplete) & set(listed)  # usually caught: 1

    last = int(tf.train.latest_checkpoint(f"{url}/checkpoints").rsplit("-", 1)[1])
    rerun = run(trainctl("fit", str(cfg), "--set", f"train.steps={last + 1}"), timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming at step {last} from" in rerun.stderr and "taking over a stale lock" in rerun.stderr
    assert all((d / "meta.json").is_file() for d in generator.glob("v*"))
    after = versions.list_versions(url)
    assert after[-1].step == last + 1 and len(after) <= 3
    table = run(trainctl("versions", str(cfg)))
    assert table.returncode == 0 and after[-1].name in table.stdout and "latest" in table.stdout
    exported = run(trainctl("export", "--model", after[-1].path, "--out", f"{url}/export"))
    assert exported.returncode == 0, exported.stderr
    assert (run_dir / "export" / "saved_model.pb").is_file() and (run_dir / "export" / "meta.json").is_file()
