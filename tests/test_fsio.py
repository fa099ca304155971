"""Remote paths (here memfs://, an object store in memory) behave like local ones for every stage that writes."""

import json

import memfs
import pytest
from shard_helpers import IN_PROCESS, shard_cfg

from pipeline import fsio, inspect_shards, publish, shard
from pipeline.shard_plan import is_shards_dir_entry


@pytest.fixture(autouse=True)
def empty_store():
    memfs.OBJECTS.clear()
    memfs.EVENTS.clear()
    yield
    memfs.OBJECTS.clear()
    memfs.EVENTS.clear()


def test_remote_files_and_prefix_dirs():
    fsio.write_bytes("memfs://b/d/x.bin", b"abc")
    with fsio.open_write("memfs://b/d/sub/y.bin") as fh:
        fh.write(b"12345")
    assert fsio.read_bytes("memfs://b/d/x.bin") == b"abc"
    assert fsio.size("memfs://b/d/sub/y.bin") == 5
    assert fsio.listdir("memfs://b/d") == ["sub", "x.bin"]
    assert fsio.listdir("memfs://b/d", prefix="s") == ["sub"]
    assert fsio.listdir("memfs://b/none") == []
    assert (
        fsio.exists("memfs://b/d/sub") and fsio.exists("memfs://b/d/x.bin") and not fsio.exists("memfs://b/e")
    )
    fsio.rename("memfs://b/d/sub", "memfs://b/d/moved")
    assert fsio.read_bytes("memfs://b/d/moved/y.bin") == b"12345" and not fsio.exists("memfs://b/d/sub")
    with pytest.raises(FileNotFoundError):
        fsio.read_bytes("memfs://b/d/sub/y.bin")
    fsio.delete_tree("memfs://b/d")
    assert memfs.OBJECTS == {}
    assert fsio.join("memfs://b/d", "e", "f") == "memfs://b/d/e/f"
    assert fsio.split("memfs://b/d/e/") == ("memfs://b/d", "e")


def test_remote_publish_moves_the_marker_last_and_recovers():
    out = "memfs://b/shards"
    fsio.write_bytes(f"{out}/gopro-a.tfrecord-00000-of-00001", b"old")
    fsio.write_bytes(f"{out}/dataset.json", b"old")
    stale = f"{out}.tmp-{publish.socket.gethostname()}-999999999"
    fsio.write_bytes(f"{stale}/gopro-a.tfrecord-00000-of-00001", b"half")
    staging = publish.prepare(out, overwrite=True, marker="dataset.json", owned=is_shards_dir_entry)
    assert not fsio.exists(stale)
    fsio.write_bytes(f"{staging}/gopro-b.tfrecord-00000-of-00001", b"new")
    fsio.write_bytes(f"{staging}/dataset.json", b"new")
    memfs.EVENTS.clear()
    publish.publish(staging, out, "dataset.json")
    assert sorted(memfs.OBJECTS) == [f"{out}/dataset.json", f"{out}/gopro-b.tfrecord-00000-of-00001"]
    assert memfs.OBJECTS[f"{out}/dataset.json"] == b"new"
    # The order a reader could see: the old dataset stops being complete before any of its files goes, and the
    # new one becomes complete only once every file is in place.
    seen = [event for event in memfs.EVENTS if event[1].startswith(f"{out}/")]
    assert seen == [
        ("delete", f"{out}/dataset.json"),
        ("delete", f"{out}/gopro-a.tfrecord-00000-of-00001"),
        ("put", f"{out}/gopro-b.tfrecord-00000-of-00001"),
        ("put", f"{out}/dataset.json"),
    ]
    assert not [path for path in memfs.OBJECTS if path.startswith(staging)]


def test_shard_and_inspect_on_remote_paths(organized_dir):
    """Source and output on the object store: manifest, images, shards and dataset.json all go through Beam."""
    for path in organized_dir.rglob("*"):
        if path.is_file():
            memfs.OBJECTS[f"memfs://bkt/organized/{path.relative_to(organized_dir)}"] = path.read_bytes()
    meta = shard.run(shard_cfg("memfs://bkt/organized", "memfs://bkt/shards"), beam_args=IN_PROCESS)
    assert {s: v["examples"] for s, v in meta["splits"].items()} == {"train": 27, "test": 9}
    assert json.loads(memfs.OBJECTS["memfs://bkt/shards/dataset.json"]) == meta
    published = [path for op, path in memfs.EVENTS if op == "put" and path.startswith("memfs://bkt/shards/")]
    assert published[-1] == "memfs://bkt/shards/dataset.json" and len(published) == len(set(published))
    assert not [p for p in memfs.OBJECTS if ".tmp-" in p]
    scans = inspect_shards.run("memfs://bkt/shards")
    assert sum(s.examples for s in scans) == 36
