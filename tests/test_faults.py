"""Fault tests (issue 6): each runs the real CLI in its own process and breaks something for real.

Full and read-only disks (tmpfs in a private mount namespace, a file-size limit, a path under a file), a flipped
byte in a shard, two trainers on one run dir, SIGKILL in the middle of writing, and two local training workers.
Each failure must end in one `error: PATH: reason` line and a non-zero exit, never a traceback or a hang, and
leave nothing half-written that looks complete.

Covered elsewhere (not repeated here): SIGKILL between checkpoints then resume, a stale lock taken over, SIGTERM
saves and resumes (test_trainer.py); a killed `shard --overwrite` keeps the earlier dataset (test_shard.py);
config fuzz (test_config_fuzz.py).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from fault_helpers import (
    ROOT,
    TINY_TRAIN,
    descendants,
    env,
    error_line,
    files_under,
    gopro_prep,
    kill_when,
    manifest_names_only_existing_files,
    namespace_mounts,
    read_stderr_until,
    run,
    run_full_disk,
    run_local_cluster,
    run_on_tmpfs,
    trainctl,
    wait_until_gone,
)
from shard_helpers import manifest_rows, read_dataset, read_rgb
from shards_fixture import write_shards

from pipeline.records import decode_image, shard_name

NO_MOUNTS = namespace_mounts()
TMPFS = pytest.param("tmpfs", marks=pytest.mark.skipif(NO_MOUNTS is not None, reason=str(NO_MOUNTS)))
RO_MOUNT = pytest.param("ro-mount", marks=pytest.mark.skipif(NO_MOUNTS is not None, reason=str(NO_MOUNTS)))
DISK_FULL = [TMPFS, "file-limit"]
TINY = TINY_TRAIN


@pytest.fixture(scope="module")
def no_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty pipeline.yaml: the CLIs run on their defaults plus flags, whatever ./pipeline.yaml says."""
    path = tmp_path_factory.mktemp("config") / "pipeline.yaml"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 train shards of 4 crops (40 px) and 1 test shard, written with the real record schema."""
    return write_shards(tmp_path_factory.mktemp("faults") / "shards", pairs=4, crop_size=40, crops_per_pair=2)


def fit_config(tmp: Path, shards: Path, run_dir: Path | str, **train: object) -> Path:
    path = tmp / "fit.yaml"
    path.write_text(
        yaml.safe_dump({"train": {**TINY, "data": str(shards), "run_dir": str(run_dir), **train}})
    )
    return path


def complete_versions(run_dir: Path) -> list[str]:
    """Names of the run's versions, asserting that every version dir is complete, loadable and `latest` is one."""
    from train.run.versions import list_versions, load_generator

    generator = run_dir / "generator"
    listed = [v.name for v in list_versions(run_dir)]
    dirs = sorted(p.name for p in generator.glob("v*")) if generator.is_dir() else []
    assert dirs == listed, f"version dirs without model or meta.json: {set(dirs) - set(listed)}"
    for name in listed:
        model = load_generator(generator / name)
        assert model.output_shape[-1] == 3
    if (generator / "latest").exists():
        assert (generator / "latest").read_text().strip() in listed
    return listed


def assert_run_dir_consistent(run_dir: Path) -> None:
    """What a failed or killed fit may leave: complete versions only, checkpoints listed only when whole."""
    complete_versions(run_dir)
    checkpoints = run_dir / "checkpoints"
    if (checkpoints / "checkpoint").exists():
        listed = re.findall(
            r'all_model_checkpoint_paths: "([^"]+)"', (checkpoints / "checkpoint").read_text()
        )
        for path in listed:
            name = Path(path).name
            assert (checkpoints / f"{name}.index").is_file(), name
            assert list(checkpoints.glob(f"{name}.data-*")), name
    leftovers = [p for p in files_under(run_dir) if "_temp" in p or ".tmp-" in p]
    assert leftovers == [], leftovers
    assert not (run_dir / "fit.lock").exists()


# ---- disk full --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(NO_MOUNTS is not None, reason=str(NO_MOUNTS))
def test_organize_that_fills_the_disk_leaves_no_manifest(
    sample_raw: Path, no_config: Path, tmp_path: Path
) -> None:
    """24 copied PNGs (~0.5 MB) onto a 200 kB disk: the copy fails midway, naming the file it was writing."""
    cmd = gopro_prep("organize", "--raw", str(sample_raw), "--out", "DISK/organized", "--link", "copy",
                     "--config", str(no_config))  # fmt: skip
    done = run_full_disk("tmpfs", cmd, tmp_path, 200_000)
    assert done.returncode == 1
    line = error_line(done.stderr, done.disk / "organized")
    assert line.endswith(": No space left on device") and line.split(": ")[1].endswith(".png")
    left = done.leftover(done.disk / "organized")
    assert list(left.rglob("*.png")), "some pairs should have been copied before the disk filled"
    assert not (left / "manifest.jsonl").exists()
    assert [p for p in files_under(left) if ".tmp-organize" in p] == []


def test_organize_rerun_that_fails_midway_drops_the_old_manifest(
    sample_raw: Path, organized_dir: Path, no_config: Path, tmp_path: Path
) -> None:
    """Re-organizing with the other blur (every A file changes) under a 4 kB file-size limit: the first copy
    fails. The old manifest (blur_gamma) must not stay next to A files that are no longer what it says."""
    assert manifest_rows(organized_dir)[0]["blur"] == "blur_gamma"
    cmd = gopro_prep("organize", "--raw", str(sample_raw), "--out", "DISK", "--blur", "blur", "--link", "copy",
                     "--config", str(no_config))  # fmt: skip
    done = run_full_disk("file-limit", cmd, tmp_path, 4096, seed=organized_dir)
    assert done.returncode == 1
    line = error_line(done.stderr, done.disk)
    assert line.endswith(": File too large") and "/A/" in line
    assert not (done.left / "manifest.jsonl").exists()
    assert [p for p in files_under(done.left) if ".tmp-organize" in p] == []
    assert manifest_names_only_existing_files(done.left)


def test_shard_that_fills_the_disk_leaves_nothing(
    organized_dir: Path, no_config: Path, tmp_path: Path
) -> None:
    """The Beam workers' write fails: the command still ends with one line naming the shard file."""
    if NO_MOUNTS is not None:
        pytest.skip(NO_MOUNTS)
    cmd = gopro_prep("shard", "--src", str(organized_dir), "--out", "DISK/shards", "--crop", "32",
                     "--crops-per-pair", "3", "--shards", "2", "--config", str(no_config))  # fmt: skip
    done = run_full_disk("tmpfs", cmd, tmp_path, 100_000)
    assert done.returncode == 1
    line = error_line(done.stderr, done.disk)
    assert re.match(
        rf"error: {done.disk}/shards\.tmp-[^/]+/gopro-\w+\.tfrecord-\d+-of-\d+: No space left", line
    )
    assert "ERROR" not in done.stderr
    assert files_under(done.left) == []  # no dataset.json, no staging dir, no half-written shards


def test_shard_overwrite_that_fails_keeps_the_published_dataset(
    organized_dir: Path, no_config: Path, tmp_path: Path
) -> None:
    """`shard --overwrite` over a published dataset under a 20 kB file-size limit: the old dataset stays whole."""
    published = write_shards(tmp_path / "published", pairs=2, crop_size=32, crops_per_pair=1)
    before = {n: (published / n).read_bytes() for n in os.listdir(published)}
    cmd = gopro_prep("shard", "--src", str(organized_dir), "--out", "DISK/shards", "--crop", "32",
                     "--crops-per-pair", "3", "--shards", "2", "--overwrite", "--config", str(no_config))  # fmt: skip
    seed = tmp_path / "seed"
    shutil.copytree(published, seed / "shards")
    done = run_full_disk("file-limit", cmd, tmp_path / "run", 20_000, seed=seed)
    assert done.returncode == 1
    line = error_line(done.stderr, done.disk)
    assert re.match(
        rf"error: {done.disk}/shards\.tmp-[^/]+/gopro-\w+\.tfrecord-\d+-of-\d+: File too large", line
    )
    assert os.listdir(done.left) == ["shards"]  # no staging or set-aside dirs
    assert {n: (done.left / "shards" / n).read_bytes() for n in before} == before
    assert sorted(os.listdir(done.left / "shards")) == sorted(before)
    inspect = run(gopro_prep("inspect", str(done.left / "shards")))
    assert inspect.returncode == 0, inspect.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", DISK_FULL)
def test_fit_on_a_full_disk_leaves_only_complete_versions_and_checkpoints(
    how: str, shards: Path, tmp_path: Path
) -> None:
    """tmpfs of 3 MB: 3 kept checkpoints (~0.5 MB each: models, optimizers, the shuffle buffer) and up to 50
    versions (~0.14 MB each) cannot all fit, so the run fails midway. File limit of 64 kB: the first checkpoint
    or version already fails (the model file alone is larger)."""
    size = 3_000_000 if how == "tmpfs" else 64_000
    cfg = fit_config(tmp_path, shards, "DISK/run", steps=100)
    cfg.write_text(cfg.read_text().replace("DISK", str(tmp_path / "disk")))
    done = run_full_disk(how, trainctl("fit", str(cfg)), tmp_path, size)
    assert done.returncode == 1
    reason = "No space left on device" if how == "tmpfs" else "File too large"
    line = error_line(done.stderr, done.disk / "run")
    assert line.endswith(reason), line
    run_dir = done.leftover(done.disk / "run")
    assert_run_dir_consistent(run_dir)
    if how == "tmpfs":
        assert "fit: done" not in done.stderr and "version v0001 at step 2" in done.stderr


# ---- read-only output ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", [RO_MOUNT, "not-a-dir"])
@pytest.mark.parametrize("stage", ["organize", "shard", "fit"])
def test_read_only_output(
    stage: str, how: str, sample_raw: Path, organized_dir: Path, shards: Path, no_config: Path, tmp_path: Path
) -> None:
    """A read-only filesystem (EROFS) or a path under a regular file (ENOTDIR): one line naming the path, even
    for root, and nothing written."""
    disk = tmp_path / "disk"
    out = disk / "out"
    cmds = {
        "organize": gopro_prep("organize", "--raw", str(sample_raw), "--out", str(out), "--config", str(no_config)),
        "shard": gopro_prep("shard", "--src", str(organized_dir), "--out", str(out), "--crop", "32",
                            "--config", str(no_config)),
        "fit": trainctl("fit", str(fit_config(tmp_path, shards, out, steps=2))),
    }  # fmt: skip
    if how == "ro-mount":
        done = run_on_tmpfs(cmds[stage], tmp_path, "1m", readonly=True)
        returncode, stderr, reason = done.returncode, done.stderr, "Read-only file system"
        assert files_under(done.left) == []
    else:
        disk.write_text("a file, not a directory\n")
        completed = run(cmds[stage])
        returncode, stderr, reason = completed.returncode, completed.stderr, "Not a directory"
        assert disk.read_text() == "a file, not a directory\n"
    assert returncode == 1, stderr
    assert error_line(stderr, disk).endswith(reason)


# ---- a corrupt shard ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_flipped_byte_in_a_shard_stops_fit_naming_the_file_or_is_skipped(
    shards: Path, tmp_path: Path
) -> None:
    bad_dir = shutil.copytree(shards, tmp_path / "shards")
    bad = bad_dir / shard_name("train", 1, 2)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))

    stopped = run(trainctl("fit", str(fit_config(tmp_path, bad_dir, tmp_path / "r1", steps=4))), timeout=180)
    assert stopped.returncode == 1, stopped.stderr
    line = error_line(stopped.stderr, bad, leading=False)
    assert f"corrupt shard {bad}" in line and "train.skip_corrupt" in line
    assert complete_versions(tmp_path / "r1") == []

    inspect = run(gopro_prep("inspect", str(bad_dir)))
    assert inspect.returncode == 1
    assert error_line(inspect.stderr, bad_dir).count(bad.name) == 1

    cfg = fit_config(tmp_path, bad_dir, tmp_path / "r2", steps=4, skip_corrupt=True)
    skipped = run(trainctl("fit", str(cfg)), timeout=180)
    assert skipped.returncode == 0, skipped.stderr
    assert "Traceback" not in skipped.stderr and "fit: done at step 4" in skipped.stderr
    assert "skip_corrupt" in skipped.stderr
    assert complete_versions(tmp_path / "r2") == ["v0001", "v0002"]
    assert bad.name in skipped.stderr  # the skipped file is named


# ---- two trainers, and a trainer killed while writing a version -----------------------------------------------


@pytest.mark.slow
def test_second_fit_is_refused_and_a_fit_killed_mid_version_leaves_only_complete_ones(
    shards: Path, tmp_path: Path
) -> None:
    """Fit A writes a version every step (keeping 4). Fit B on the same run dir is refused while A runs (A's pid
    and host in the lock). A is then SIGKILLed, preferably while a version is being written (or pruned); the
    rerun takes the lock over, resumes from the last checkpoint, and every version it finds or writes is
    complete."""
    run_dir = tmp_path / "run"
    cfg = fit_config(
        tmp_path, shards, run_dir, steps=100_000, checkpoint_every=3, version_every=1, keep_versions=4
    )
    first = subprocess.Popen(
        trainctl("fit", str(cfg)), cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True
    )
    try:
        read_stderr_until(first, lambda line: line.startswith("version v0001 at step 1"))
        lock = json.loads((run_dir / "fit.lock").read_text())
        assert (lock["pid"], lock["host"]) == (first.pid, socket.gethostname())

        second = run(trainctl("fit", str(cfg)), timeout=180)
        assert second.returncode == 1
        line = error_line(second.stderr, run_dir)
        assert (
            f"{run_dir / 'fit.lock'}: run dir is in use by pid {first.pid} on {socket.gethostname()}" in line
        )
        assert first.poll() is None and json.loads((run_dir / "fit.lock").read_text())["pid"] == first.pid

        generator = run_dir / "generator"
        kill_when(  # catch a version mid-write if we can
            first, lambda: bool(list(generator.glob(".v*.tmp-*"))) and len(list(generator.glob("v*"))) >= 4
        )
    finally:
        first.kill()
    assert first.returncode == -signal.SIGKILL
    versions = complete_versions(run_dir)  # a half-written version is a hidden temp dir, never a vNNNN
    assert 4 <= len(versions) <= 5
    from train.run.versions import list_versions

    saved = [int(p.name.split("-")[1].split(".")[0]) for p in (run_dir / "checkpoints").glob("ckpt-*.index")]
    last = max(saved)
    assert last >= 3 and last % 3 == 0

    rerun = run(trainctl("fit", str(cfg), "--set", f"train.steps={last + 1}"), timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert f"taking over a stale lock from pid {first.pid}" in rerun.stderr
    assert f"resuming at step {last} from" in rerun.stderr
    assert_run_dir_consistent(run_dir)
    after = list_versions(run_dir)
    assert (
        after[-1].step == last + 1
        and (run_dir / "generator" / "latest").read_text().strip() == after[-1].name
    )


# ---- two local workers from the CLI ---------------------------------------------------------------------------


@pytest.mark.slow
def test_two_local_workers_from_the_cli_only_the_chief_writes(shards: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = fit_config(tmp_path, shards, run_dir, steps=4, batch_size=4)
    workers = run_local_cluster(lambda _: trainctl("fit", str(cfg)), tmp_path / "logs")
    assert [w.returncode for w in workers] == [0, 0], [w.stderr for w in workers]
    chief, other = (w.stderr for w in workers)
    assert ("MultiWorkerMirroredStrategy, 2 replica(s) on 2 worker(s), global batch 4 (2 per replica)"
            in chief)  # fmt: skip
    assert "version v0002 at step 4" in chief
    assert not [line for line in other.splitlines() if line.startswith(("version ", "fit: ", "step "))], other

    # Only the chief's files: versions, samples, logs (event files carry the writer's pid), run.json; the other
    # worker keeps just its data position under checkpoints/worker-1/.
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "generator", "logs", "run.json", "samples"]
    assert complete_versions(run_dir) == ["v0001", "v0002"]
    assert sorted(os.listdir(run_dir / "samples")) == ["step_000002.png", "step_000004.png"]
    events = os.listdir(run_dir / "logs")
    assert events and all(f".{workers[0].pid}." in name for name in events), events
    checkpoint_files = files_under(run_dir / "checkpoints")
    other_files = [p for p in checkpoint_files if p.startswith("worker-")]
    assert other_files and all(p.startswith("worker-1") for p in other_files)
    assert not [p for p in checkpoint_files if "scratch" in p or p.startswith(".")]
    assert_run_dir_consistent(run_dir)


# ---- shard killed mid-run ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_shard_killed_mid_run_then_rerun_publishes_a_correct_dataset(
    organized_dir: Path, no_config: Path, tmp_path: Path
) -> None:
    """SIGKILL the CLI (default runner: one worker process per core) while shards are being written. Its workers
    must not re-create the staging dir once it is cleaned up, and a plain rerun takes over the killed run's lock
    and publishes a dataset that passes inspect and holds the organized pixels, with no temp dirs left."""
    out = tmp_path / "shards"
    args = ["shard", "--src", str(organized_dir), "--out", str(out), "--crop", "32", "--shards", "2",
            "--config", str(no_config)]  # fmt: skip
    proc = subprocess.Popen(gopro_prep(*args, "--crops-per-pair", "400"), cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    staging: list[Path] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        staging = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith("shards.tmp-")]
        if any(n.startswith("gopro-") for d in staging if d.is_dir() for n in os.listdir(d)):
            break
        time.sleep(0.005)
    workers = descendants(proc.pid)
    assert proc.poll() is None and staging and workers, "the run should be writing shards with its workers"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    for d in staging:  # what the rerun's cleanup does first; the orphaned workers may still be running
        shutil.rmtree(d)
    assert wait_until_gone(workers) == []
    assert not [n for n in os.listdir(tmp_path) if n.startswith("shards.")], (
        "a worker re-created the staging dir"
    )

    assert json.loads((tmp_path / ".shards.lock").read_text())["pid"] == proc.pid  # left by the killed run

    rerun = run(gopro_prep(*args, "--crops-per-pair", "2"))
    assert rerun.returncode == 0, rerun.stderr
    assert f"{tmp_path / '.shards.lock'}: taking over a stale lock from pid {proc.pid}" in rerun.stderr
    assert os.listdir(tmp_path) == ["shards"]
    inspect = run(gopro_prep("inspect", str(out)))
    assert inspect.returncode == 0, inspect.stderr
    meta, records = read_dataset(out)
    assert {s: v["pairs"] for s, v in meta["splits"].items()} == {"test": 3, "train": 9}
    assert sum(len(r) for r in records.values()) == 24
    rows = {(r["scene"], r["frame"]): r for r in manifest_rows(organized_dir)}
    for recs in records.values():
        for rec in recs:
            row = rows[(rec.scene, rec.frame)]
            window = (slice(rec.y, rec.y + 32), slice(rec.x, rec.x + 32))
            assert np.array_equal(
                decode_image(rec.blur, meta["encoding"], 32, 32), read_rgb(organized_dir / row["a"])[window]
            )
            assert np.array_equal(
                decode_image(rec.sharp, meta["encoding"], 32, 32), read_rgb(organized_dir / row["b"])[window]
            )


# ---- the pieces the fault paths rely on ------------------------------------------------------------------------


def test_write_errors_name_the_destination(tmp_path: Path) -> None:
    """A full disk surfaces at close with no file name, and shutil's sendfile copy names the source file."""
    from pipeline.fsio import errors_name

    with pytest.raises(OSError) as caught, errors_name(tmp_path / "out.bin"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(tmp_path / "out.bin"))
    with pytest.raises(OSError) as caught, errors_name(tmp_path / "copy.png"):
        raise OSError(errno.EFBIG, "File too large", "/raw/source.png", None, str(tmp_path / ".copy.tmp"))
    assert caught.value.filename == str(tmp_path / "copy.png")
    with pytest.raises(FileNotFoundError) as missing, errors_name(tmp_path / "copy.png"):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/raw/gone.png")
    assert missing.value.filename == "/raw/gone.png"  # a read error keeps the file it is about


def test_shard_failure_line_leads_with_the_file_of_a_worker_os_error() -> None:
    from pipeline.shard import _failure_message

    worker = RuntimeError(
        "Traceback ...\nRuntimeError: OSError: [Errno 28] No space left on device: '/d/s.tmp-h-1/gopro-train."
        "tfrecord-00000-of-00002' [while running 'WriteShards/WriteShard']"
    )
    assert _failure_message(worker, "FnApiRunner (2 workers)") == (
        "/d/s.tmp-h-1/gopro-train.tfrecord-00000-of-00002: No space left on device "
        "(shard pipeline failed on FnApiRunner (2 workers))"
    )
    other = ValueError("Traceback ...\nValueError: bad element [while running 'Parse']")
    assert (
        _failure_message(other, "X")
        == "shard pipeline failed on X: ValueError: bad element [while running 'Parse']"
    )


def test_beam_worker_stderr_drops_only_the_printed_traceback() -> None:
    import io

    from pipeline.beam_runner import _NoTracebacks

    sink = io.StringIO()
    stderr = _NoTracebacks(sink)
    stderr.write("shard gopro-train.tfrecord-00000-of-00002: 2/4 pairs\n")
    stderr.write(
        "Traceback (most recent call last):\n  File ...\nOSError: [Errno 28] No space left on device"
    )
    stderr.write("\n")
    stderr.write("next line\n")
    assert sink.getvalue() == "shard gopro-train.tfrecord-00000-of-00002: 2/4 pairs\nnext line\n"


def test_checkpoint_save_errors_read_as_their_os_reason_and_partial_saves_are_cleaned(tmp_path: Path) -> None:
    import tensorflow as tf

    from train.run.checkpoint import RunCheckpoint
    from train.run.rundir import reason
    from train.strategy import Cluster

    exc = tf.errors.ResourceExhaustedError(
        None,
        None,
        "{{function_node __wrapped__SaveV2_dtypes_115_device_/job:localhost/replica:0/task:0/device:CPU:0}} "
        "/r/checkpoints/ckpt-2_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No space left on device "
        "[Op:SaveV2]",
    )
    assert reason(exc) == "No space left on device"
    (tmp_path / "checkpoints" / "ckpt-6_temp").mkdir(parents=True)
    (tmp_path / "checkpoints" / "ckpt-3.index").write_bytes(b"")
    RunCheckpoint(tmp_path, Cluster(1, 0, True), {})
    assert os.listdir(tmp_path / "checkpoints") == ["ckpt-3.index"]
