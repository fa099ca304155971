"""Manifest parsing, balanced deterministic shard assignment, dataset.json assembly."""

import hashlib
import json

import pytest

from pipeline.dataset_info import build as dataset_metadata
from pipeline.errors import DataError, UsageError
from pipeline.manifest import Pair, parse_manifest_line, summarize_manifest
from pipeline.shard_plan import assign_shards, check_crop, shard_count

ROW = {"split": "train", "scene": "S1", "frame": "000001", "a": "train/A/S1_000001.png",
       "b": "train/B/S1_000001.png", "width": 1280, "height": 720, "blur": "blur_gamma"}  # fmt: skip


def _pair(scene: str, frame: str, split: str = "train") -> Pair:
    return Pair(
        split, scene, frame, f"{split}/A/{scene}_{frame}.png", f"{split}/B/{scene}_{frame}.png", 64, 48
    )


def test_parse_manifest_line():
    pair = parse_manifest_line(json.dumps(ROW), "m.jsonl:1")
    assert pair == Pair("train", "S1", "000001", ROW["a"], ROW["b"], 1280, 720, "blur_gamma")
    assert parse_manifest_line(json.dumps({**ROW, "blur": None}), "x").blur is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "m.jsonl:7: not JSON"),
        ("[1, 2]", "m.jsonl:7: expected a JSON object, got list"),
        (
            json.dumps({k: v for k, v in ROW.items() if k not in ("a", "height")}),
            "m.jsonl:7: missing key.s. a, height",
        ),
        (json.dumps({**ROW, "width": "wide"}), "m.jsonl:7: width/height must be integers"),
    ],
)
def test_parse_manifest_line_errors_name_the_line(line, message):
    with pytest.raises(DataError, match=message):
        parse_manifest_line(line, "m.jsonl:7")


def test_summarize_manifest(tmp_path):
    rows = [ROW, {**ROW, "frame": "000002"}, {**ROW, "split": "test", "scene": "S9"}]
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")  # a trailing blank line is fine
    summary = summarize_manifest(str(path))
    assert summary.pairs == {"test": 1, "train": 2}
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary.blur == "blur_gamma"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps({**ROW, "blur": "blur"}) + "\n")
    assert summarize_manifest(str(path)).blur == ["blur", "blur_gamma"]


def test_frame_sizes_are_summarized_and_checked_against_the_crop(tmp_path):
    """Counted from the manifest alone; refused when no frame fits the crop, naming the one that comes closest."""
    rows = [{**ROW, "frame": f"{i:06d}", "width": 320, "height": 180} for i in range(3)]
    rows.append({**ROW, "frame": "000009", "width": 100, "height": 400})
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = summarize_manifest(str(path))
    assert summary.sizes == {(320, 180): 3, (100, 400): 1}
    assert (check_crop(summary, 100), check_crop(summary, 101), check_crop(summary, 180)) == (0, 1, 1)
    with pytest.raises(UsageError) as info:
        check_crop(summary, 181)
    assert (
        str(info.value)
        == f"--crop 181 is larger than every frame (largest 320x180 in {path}); use --crop 180 or less"
    )


def test_summarize_manifest_errors(tmp_path):
    with pytest.raises(DataError, match="no manifest"):
        summarize_manifest(str(tmp_path / "manifest.jsonl"))
    (tmp_path / "manifest.jsonl").write_text("\n")
    with pytest.raises(DataError, match="lists no pairs; nothing to shard"):
        summarize_manifest(str(tmp_path / "manifest.jsonl"))
    (tmp_path / "manifest.jsonl").write_text(json.dumps(ROW) + "\n{oops\n")
    with pytest.raises(DataError, match=r"manifest.jsonl:2: not JSON"):
        summarize_manifest(str(tmp_path / "manifest.jsonl"))


def test_shard_count_caps_at_pairs():
    assert shard_count("train", {"train": 8, "test": 2}, 2103) == 8
    assert shard_count("test", {"train": 8, "test": 2}, 1) == 1
    assert shard_count("val", {"train": 8, "test": 2}, 50) == 1  # a split the config does not name


def test_assign_shards_is_balanced_and_order_independent():
    pairs = [_pair(f"S{s}", f"{f:06d}") for s in range(5) for f in range(7)]  # 35 pairs
    keyed = assign_shards("train", pairs, {"train": 8})
    sizes = {}
    for (split, index, count), _ in keyed:
        assert (split, count) == ("train", 8)
        sizes[index] = sizes.get(index, 0) + 1
    assert sorted(sizes.values()) == [4, 4, 4, 4, 4, 5, 5, 5]
    assert assign_shards("train", reversed(pairs), {"train": 8}) == keyed
    assert keyed[0] == (("train", 0, 8), _pair("S0", "000000"))
    assert keyed[9] == (("train", 1, 8), _pair("S1", "000002"))
    few = assign_shards("test", pairs[:3], {"test": 5})
    assert [k for k, _ in few] == [("test", 0, 3), ("test", 1, 3), ("test", 2, 3)]


def test_dataset_metadata_sums_per_split():
    def result(split, index, count, pairs, examples, rejected):
        return {"split": split, "index": index, "count": count, "file": f"gopro-{split}.tfrecord-{index:05d}-of-{count:05d}",
                "pairs": pairs, "examples": examples, "bytes": 0, "rejected": [{"reason": "too_small"}] * rejected}  # fmt: skip

    results = [
        result("train", 1, 2, 3, 12, 0),
        result("test", 0, 1, 2, 4, 1),
        result("train", 0, 2, 4, 12, 1),
    ]
    meta = dataset_metadata(results, {"crop_size": 32})
    assert meta["crop_size"] == 32
    assert meta["splits"]["train"] == {
        "pairs": 7,
        "examples": 24,
        "rejected": 1,
        "shards": [
            {"file": "gopro-train.tfrecord-00000-of-00002", "examples": 12},
            {"file": "gopro-train.tfrecord-00001-of-00002", "examples": 12},
        ],
    }
    assert meta["splits"]["test"]["pairs"] == 2 and meta["splits"]["test"]["rejected"] == 1


def test_shards_dir_entries():
    from pipeline.records import shard_name
    from pipeline.shard_plan import is_shard_file, is_shards_dir_entry

    assert is_shard_file(shard_name("train", 3, 8)) and is_shard_file("gopro-test.tfrecord-00000-of-00002")
    assert not is_shard_file("gopro-train.tfrecord-3-of-8") and not is_shard_file("train.tfrecord")
    assert is_shards_dir_entry("dataset.json") and is_shards_dir_entry("rejected.jsonl")
    assert not is_shards_dir_entry("notes.txt") and not is_shards_dir_entry("manifest.jsonl")
