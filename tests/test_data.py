"""train.fit.data and train.fit.augment: dataset.json contract, paired crops/flips, sharding, determinism, corrupt shards."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from shards_fixture import write_shards

from pipeline import records
from pipeline.errors import ConfigError, DataError
from train.fit.augment import paired_augment, to_uint8
from train.fit.data import find_corrupt_shards, make_dataset, read_dataset_info, stack_replicas


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shards(tmp_path_factory.mktemp("data") / "shards", pairs=6, crop_size=40, crops_per_pair=2)


@pytest.fixture(scope="module")
def inverted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """blur = 255 - sharp exactly: any crop/flip applied to both keeps blur == -sharp in [-1, 1]."""
    out = tmp_path_factory.mktemp("inv") / "shards"
    return write_shards(out, pairs=4, crop_size=40, crops_per_pair=2, make_blur=lambda s: 255 - s)


def batches(ds: tf.data.Dataset, n: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    items = ds if n is None else ds.take(n)
    return [(b.numpy(), s.numpy()) for b, s in items]


def test_dir_without_dataset_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / records.shard_name("train", 0, 1)).write_bytes(b"")
    with pytest.raises(DataError, match=str(tmp_path)) as info:
        make_dataset(str(tmp_path), "train", 4, 32, True)
    assert "dataset.json" in str(info.value)


def test_dataset_info_fingerprint_is_sha256_of_dataset_json(shards: Path) -> None:
    info = read_dataset_info(str(shards))
    assert info.sha256 == hashlib.sha256((shards / "dataset.json").read_bytes()).hexdigest()
    assert info.fingerprint() == {"sha256": info.sha256, "examples": 12, "path": str(shards)}
    assert [Path(f).name for f in info.files("train")] == [
        records.shard_name("train", i, 2) for i in range(2)
    ]
    with pytest.raises(DataError, match="no split 'val'"):
        info.files("val")


def test_training_batches_shape_range_and_determinism(shards: Path) -> None:
    first = batches(make_dataset(str(shards), "train", 4, 32, True, seed=3), 5)
    again = batches(make_dataset(str(shards), "train", 4, 32, True, seed=3), 5)
    other = batches(make_dataset(str(shards), "train", 4, 32, True, seed=4), 5)
    blur, sharp = first[0]
    assert blur.shape == sharp.shape == (4, 32, 32, 3) and blur.dtype == np.float32
    assert blur.min() >= -1.0 and blur.max() <= 1.0
    assert all(
        np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True)
    )
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_crop_and_flips_are_identical_for_blur_and_sharp(inverted: Path) -> None:
    for blur, sharp in batches(make_dataset(str(inverted), "train", 4, 24, True, seed=1), 6):
        np.testing.assert_allclose(blur, -sharp, atol=1e-6)


def test_validation_is_one_pass_of_centre_crops_in_file_order(shards: Path) -> None:
    got = batches(make_dataset(str(shards), "test", 5, 32, False))
    assert [b.shape[0] for b, _ in got] == [5, 5, 2]  # 12 test crops, last batch partial
    with (shards / records.shard_name("test", 0, 1)).open("rb") as fh:
        payload = next(records.iter_records(fh))
    sharp = records.tf_parse(payload, "png")["sharp"].numpy()
    assert np.array_equal(to_uint8(got[0][1][0]).numpy(), sharp[4:36, 4:36])  # (40 - 32) // 2 = 4


def test_paired_augment_window_is_a_dihedral_view_of_the_source() -> None:
    source = np.arange(10 * 12 * 3, dtype=np.int64).reshape(10, 12, 3) % 251
    img = tf.constant(source.astype(np.uint8))
    blur, sharp = paired_augment(img, img, 6, tf.constant([7, 9], tf.int64), training=True)
    crop = to_uint8(sharp).numpy()
    assert np.array_equal(to_uint8(blur).numpy(), crop)
    views = [np.rot90(v, k) for v in (crop, crop[:, ::-1]) for k in range(4)]
    found = [
        (y, x)
        for y in range(5)
        for x in range(7)
        for view in views
        if np.array_equal(view, source[y : y + 6, x : x + 6].astype(np.uint8))
    ]
    assert found, "the crop is not any flip/rotation of a 6x6 window of the source"


def _examples(ds: tf.data.Dataset) -> set[bytes]:
    return {hashlib.sha1(img.tobytes()).digest() for b, _ in batches(ds) for img in b}


@pytest.mark.parametrize("train_shards", [2, 1])
def test_input_pipelines_split_by_file_or_by_record(tmp_path: Path, train_shards: int) -> None:
    """2 pipelines: by FILE when there are >= 2 files, else by record (DATA); disjoint and complete either way."""
    out = write_shards(
        tmp_path / "s", pairs=4, crop_size=32, crops_per_pair=2, shards={"train": train_shards}
    )
    whole = _examples(make_dataset(str(out), "train", 2, 32, False))
    parts = [
        _examples(make_dataset(str(out), "train", 4, 32, False, tf.distribute.InputContext(2, i, 2)))
        for i in range(2)
    ]
    assert len(whole) == 8 and parts[0] | parts[1] == whole and not parts[0] & parts[1]
    assert len(parts[0]) == len(parts[1]) == 4


def test_per_replica_batch_and_replica_stacking(shards: Path) -> None:
    ds = make_dataset(str(shards), "train", 8, 32, True, tf.distribute.InputContext(1, 0, 4), seed=0)
    blur, _ = next(iter(ds))
    assert blur.shape == (2, 32, 32, 3)
    stacked, _ = next(iter(stack_replicas(ds, 4)))
    assert stacked.shape == (4, 2, 32, 32, 3)


def test_crop_larger_than_shards_is_a_config_error(shards: Path) -> None:
    with pytest.raises(ConfigError, match="train.crop_size=64"):
        make_dataset(str(shards), "train", 4, 64, True)


def test_corrupt_shard_fails_or_is_skipped(tmp_path: Path) -> None:
    out = write_shards(tmp_path / "s", pairs=4, crop_size=32, crops_per_pair=2)
    bad = out / records.shard_name("train", 1, 2)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    info = read_dataset_info(str(out))
    found = find_corrupt_shards(info, "train")
    assert len(found) == 1 and found[0].startswith(str(bad))
    with pytest.raises(tf.errors.DataLossError):
        batches(make_dataset(str(out), "train", 1, 32, False))
    kept = batches(make_dataset(str(out), "train", 1, 32, False, skip_corrupt=True))
    assert 4 <= len(kept) < 8  # the intact shard's 4 crops and whatever precedes the flipped byte


def test_invalid_dataset_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"splits": {}}))
    with pytest.raises(DataError, match="dataset.json: not a valid"):
        read_dataset_info(str(tmp_path))
