"""`gopro-prep inspect`: reads every record without TensorFlow, catches missing records and corrupt bytes."""

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from shard_helpers import IN_PROCESS, read_dataset, shard_cfg
from typer.testing import CliRunner

from pipeline import inspect_shards, shard
from pipeline.cli import app
from pipeline.errors import DataError
from pipeline.records import decode_image, iter_records, write_record


@pytest.fixture(scope="module")
def shards_dir(organized_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("inspect") / "shards"
    shard.run(shard_cfg(organized_dir, out, encoding="png"), beam_args=IN_PROCESS)
    return out


@pytest.fixture
def copy(shards_dir, tmp_path):
    return shutil.copytree(shards_dir, tmp_path / "shards")


def _inspect(path, *args):
    return CliRunner().invoke(app, ["inspect", str(path), *args])


def test_clean_dataset_passes_and_prints_a_table(shards_dir):
    result = _inspect(shards_dir)
    assert result.exit_code == 0, result.output
    assert (
        "gopro-train.tfrecord-00002-of-00003" in result.output and "all match dataset.json" in result.output
    )
    scans = inspect_shards.run(str(shards_dir))
    assert [(s.file, s.examples, len(s.pairs)) for s in scans] == [
        ("gopro-test.tfrecord-00000-of-00002", 6, 2),
        ("gopro-test.tfrecord-00001-of-00002", 3, 1),
        ("gopro-train.tfrecord-00000-of-00003", 9, 3),
        ("gopro-train.tfrecord-00001-of-00003", 9, 3),
        ("gopro-train.tfrecord-00002-of-00003", 9, 3),
    ]
    assert all(s.problem is None for s in scans)


def test_reads_without_tensorflow(shards_dir):
    code = (
        "import sys; from pipeline.inspect_shards import run; run(sys.argv[1]); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(shards_dir)], check=True, capture_output=True)


def test_missing_record_is_caught(copy):
    name = "gopro-train.tfrecord-00001-of-00003"
    with open(copy / name, "rb") as fh:
        payloads = list(iter_records(fh))
    with open(copy / name, "wb") as fh:
        for payload in payloads[:-1]:
            write_record(fh, payload)
    result = _inspect(copy)
    assert result.exit_code == 1
    assert f"{name}: 8 records, dataset.json says 9" in result.output


def test_flipped_byte_is_caught_by_crc(copy):
    name = "gopro-test.tfrecord-00001-of-00002"
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01  # inside an image payload: tfrecord-lite alone would not notice
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"1 problem\(s\): {name}: record \d: payload checksum mismatch"):
        inspect_shards.run(str(copy))


def test_truncated_and_missing_shards_are_named(copy):
    truncated = "gopro-train.tfrecord-00000-of-00003"
    data = (copy / truncated).read_bytes()
    (copy / truncated).write_bytes(data[:-10])
    (copy / "gopro-test.tfrecord-00000-of-00002").unlink()
    with pytest.raises(DataError) as err:
        inspect_shards.run(str(copy))
    assert f"{truncated}: record 8: truncated payload" in str(err.value)
    assert "gopro-test.tfrecord-00000-of-00002: missing file" in str(err.value)


def test_count_mismatches_in_dataset_json(copy):
    meta = json.loads((copy / "dataset.json").read_text())
    meta["splits"]["train"]["examples"] = 26
    meta["splits"]["test"]["rejected"] = 1
    (copy / "dataset.json").write_text(json.dumps(meta))
    (copy / "gopro-train.tfrecord-00007-of-00008").write_bytes(b"")
    with pytest.raises(DataError) as err:
        inspect_shards.run(str(copy))
    text = str(err.value)
    assert "train: dataset.json says 26 examples, its shards list 27" in text
    assert "test: records come from 3 pairs, dataset.json says 2 written" in text
    assert "test: rejected.jsonl lists 0, dataset.json says 1" in text
    assert "gopro-train.tfrecord-00007-of-00008: shard file not listed in dataset.json" in text


def test_not_a_shards_dir(tmp_path):
    result = _inspect(tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path}: no dataset.json; not a complete shards dir" in result.output


def test_dump_writes_side_by_side_pairs(shards_dir, tmp_path):
    out = tmp_path / "dump"
    result = _inspect(shards_dir, "--dump", str(out), "--samples", "4")
    assert result.exit_code == 0, result.output
    files = sorted(out.iterdir())
    assert len(files) == 4
    _, shards = read_dataset(shards_dir)
    records = {(r.scene, r.frame, r.y, r.x): r for recs in shards.values() for r in recs}
    for path in files:
        split, rest = path.stem.split("_", 1)
        scene, frame, y, x = rest.rsplit("_", 3)
        rec = records[(scene, frame, int(y[1:]), int(x[1:]))]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert image.shape == (32, 64, 3)
        assert np.array_equal(image[:, :32], decode_image(rec.blur, "png", 32, 32))
        assert np.array_equal(image[:, 32:], decode_image(rec.sharp, "png", 32, 32))
    assert {p.name.split("_")[0] for p in files} == {"train", "test"}  # spread over the whole dataset


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("dataset.json", '{"encoding": "raw", "crop_size": 8, "crops_per_pair": 1, "splits": []}', "splits"),
        ("dataset.json", "[1, 2]", "expected a JSON object"),
        ("rejected.jsonl", "garbage\n", "rejected.jsonl:1: not a JSON line"),
    ],
)
def test_damaged_metadata_is_one_line_exit_1(tmp_path, name, text, message):
    """A damaged dataset.json or rejected.jsonl is reported in one line naming the file, never a traceback."""
    (tmp_path / "dataset.json").write_text(
        json.dumps({"encoding": "raw", "crop_size": 8, "crops_per_pair": 1, "splits": {}})
    )
    (tmp_path / name).write_text(text)
    result = CliRunner().invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
