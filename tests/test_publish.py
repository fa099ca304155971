"""Atomic publish: staging sibling, swap into place, --overwrite rules, recovery after killed runs."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import publish
from pipeline.errors import UsageError

MARKER = "dataset.json"


def owned(name: str) -> bool:
    return name in (MARKER, "rejected.jsonl") or name.startswith("gopro-")


def _dataset(path, text="old"):
    path.mkdir(parents=True)
    (path / "gopro-train.tfrecord-00000-of-00001").write_text(text)
    (path / MARKER).write_text(text)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_prepare_and_publish_fresh(tmp_path):
    out = tmp_path / "data" / "shards"
    staging = publish.prepare(str(out), overwrite=False, marker=MARKER, owned=owned)
    assert staging == f"{out}.tmp-{socket.gethostname()}-{os.getpid()}"
    assert os.path.isdir(staging) and not out.exists()
    (tmp_path / "data" / "shards.tmp-x").mkdir()  # a name that is not ours to touch
    Path(staging, MARKER).write_text("new")
    publish.publish(staging, str(out), MARKER)
    assert (out / MARKER).read_text() == "new"
    assert sorted(os.listdir(tmp_path / "data")) == ["shards", "shards.tmp-x"]


def test_existing_dataset_needs_overwrite(tmp_path):
    out = tmp_path / "shards"
    _dataset(out)
    with pytest.raises(UsageError, match="already holds a published dataset; pass --overwrite"):
        publish.prepare(str(out), overwrite=False, marker=MARKER, owned=owned)
    staging = publish.prepare(str(out), overwrite=True, marker=MARKER, owned=owned)
    assert (out / MARKER).read_text() == "old"  # untouched until publish
    Path(staging, MARKER).write_text("new")
    publish.publish(staging, str(out), MARKER)
    assert sorted(os.listdir(out)) == [MARKER] and (out / MARKER).read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["shards"]


def test_refuses_foreign_files_even_with_overwrite(tmp_path):
    out = tmp_path / "shards"
    _dataset(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"did not write \(e.g. notes.txt\); refusing"):
        publish.prepare(str(out), overwrite=True, marker=MARKER, owned=owned)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        publish.prepare(str(tmp_path / "file"), overwrite=True, marker=MARKER, owned=owned)
    (tmp_path / "empty").mkdir()
    assert os.path.isdir(
        publish.prepare(str(tmp_path / "empty"), overwrite=False, marker=MARKER, owned=owned)
    )


def test_recover_removes_stale_staging_and_keeps_live_ones(tmp_path):
    out = tmp_path / "shards"
    _dataset(out)
    host = socket.gethostname()
    stale = tmp_path / f"shards.tmp-{host}-{_dead_pid()}"
    stale.mkdir()
    (stale / "gopro-train.tfrecord-00000-of-00001").write_text("half")
    live = tmp_path / f"shards.tmp-{host}-{os.getppid()}"  # our parent process is alive
    live.mkdir()
    elsewhere = tmp_path / "shards.tmp-otherhost-1"
    elsewhere.mkdir()
    publish.recover(str(out))
    assert not stale.exists() and live.exists() and elsewhere.exists()
    assert (out / MARKER).read_text() == "old"


def test_recover_puts_back_a_dataset_renamed_aside(tmp_path):
    """A run killed between the two renames of publish: OUT missing, OUT.old-* holds the earlier dataset."""
    out = tmp_path / "shards"
    old = tmp_path / f"shards.old-{socket.gethostname()}-{_dead_pid()}"
    _dataset(old)
    publish.recover(str(out))
    assert (out / MARKER).read_text() == "old" and not old.exists()
    # once OUT is back in place, a later leftover .old dir is simply removed
    _dataset(old, "older")
    publish.recover(str(out))
    assert not old.exists() and (out / MARKER).read_text() == "old"


def test_discard(tmp_path):
    staging = publish.prepare(str(tmp_path / "shards"), overwrite=False, marker=MARKER, owned=owned)
    publish.discard(staging)
    assert os.listdir(tmp_path) == []
