"""One shard: pairs decoded once, crops aligned in A and B, bad pairs become reject rows, bytes deterministic."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from shard_helpers import read_shard

from pipeline.crops import crop_offsets
from pipeline.manifest import Pair
from pipeline.records import decode_image
from pipeline.shard_writer import CropParams, load_pair, pair_records, write_shard


def _write_pair(root: Path, scene: str, frame: str, size=(48, 64), seed=0) -> Pair:
    """A random A/B pair of (height, width) `size` written as PNGs under root/train/{A,B}."""
    rng = np.random.default_rng([seed, len(scene), int(frame)])
    name = f"{scene}_{frame}.png"
    for folder in ("A", "B"):
        (root / "train" / folder).mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(
            str(root / "train" / folder / name), rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        )
    return Pair("train", scene, frame, f"train/A/{name}", f"train/B/{name}", size[1], size[0])


def _rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]


@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_pair_records_are_aligned_crops(tmp_path, encoding):
    pair = _write_pair(tmp_path, "S1", "000001")
    params = CropParams(str(tmp_path), 16, 5, 7, encoding)
    loaded = load_pair(pair, params)
    assert not isinstance(loaded, dict)
    recs = pair_records(pair, *loaded, params)
    a, b = _rgb(tmp_path / pair.a), _rgb(tmp_path / pair.b)
    assert [(r.y, r.x) for r in recs] == crop_offsets(7, "S1", "000001", 5, 48, 64, 16)
    for r in recs:
        assert (r.height, r.width, r.scene, r.frame) == (16, 16, "S1", "000001")
        assert np.array_equal(decode_image(r.blur, encoding, 16, 16), a[r.y : r.y + 16, r.x : r.x + 16])
        assert np.array_equal(decode_image(r.sharp, encoding, 16, 16), b[r.y : r.y + 16, r.x : r.x + 16])
    if encoding == "raw":
        assert len(recs[0].blur) == 16 * 16 * 3


def test_load_pair_rejects(tmp_path):
    params = CropParams(str(tmp_path), 16, 2, 0, "png")
    good = _write_pair(tmp_path, "S1", "000001")

    small = Pair("train", "S1", "000001", good.a, good.b, 15, 48)  # manifest says narrower than the crop
    assert load_pair(small, params) == {"split": "train", "scene": "S1", "frame": "000001",
        "path": str(tmp_path / good.a), "reason": "too_small", "detail": "15x48 frame, 16px crop"}  # fmt: skip

    truncated = _write_pair(tmp_path, "S2", "000002")
    data = (tmp_path / truncated.b).read_bytes()
    (tmp_path / truncated.b).write_bytes(data[: len(data) // 2])
    rej = load_pair(truncated, params)
    assert (rej["reason"], rej["path"]) == ("unreadable", str(tmp_path / truncated.b))

    missing = Pair("train", "S3", "000003", "train/A/nope.png", good.b, 64, 48)
    assert load_pair(missing, params)["reason"] == "unreadable"

    other = _write_pair(tmp_path, "S4", "000004", size=(40, 64))
    mixed = Pair("train", "S4", "000004", good.a, other.b, 64, 48)
    rej = load_pair(mixed, params)
    assert (rej["reason"], rej["detail"]) == ("size_mismatch", "A is 64x48, B is 64x40")

    stale = Pair("train", "S1", "000001", good.a, good.b, 64, 50)
    rej = load_pair(stale, params)
    assert (rej["reason"], rej["detail"]) == ("size_mismatch", "manifest says 64x50, file is 64x48")


def test_write_shard_counts_rejects_and_is_deterministic(tmp_path):
    src = tmp_path / "organized"
    pairs = [_write_pair(src, f"S{i}", f"{i:06d}") for i in range(4)]
    (src / pairs[2].a).write_bytes(b"not a png")
    params = CropParams(str(src), 16, 3, 1, "png")

    res = write_shard(str(tmp_path / "out1"), ("train", 2, 5), pairs, params)
    assert res["file"] == "gopro-train.tfrecord-00002-of-00005"
    assert (res["pairs"], res["examples"]) == (4, 9)
    assert [(r["scene"], r["reason"]) for r in res["rejected"]] == [("S2", "unreadable")]
    recs = read_shard(tmp_path / "out1" / res["file"])
    assert [r.scene for r in recs] == ["S0"] * 3 + ["S1"] * 3 + ["S3"] * 3
    assert res["bytes"] == (tmp_path / "out1" / res["file"]).stat().st_size

    again = write_shard(
        str(tmp_path / "out2"), ("train", 2, 5), list(reversed(pairs)), params
    )  # another order
    assert again == res
    assert (tmp_path / "out2" / res["file"]).read_bytes() == (tmp_path / "out1" / res["file"]).read_bytes()


def test_write_shard_reports_progress(tmp_path):
    pairs = [_write_pair(tmp_path, f"S{i}", f"{i:06d}") for i in range(3)]
    seen = []
    write_shard(str(tmp_path / "out"), ("train", 0, 1), pairs, CropParams(str(tmp_path), 16, 1, 0, "raw"),
                progress=lambda name, done, total: seen.append((name, done, total)), every_s=0.0)  # fmt: skip
    assert seen == [("gopro-train.tfrecord-00000-of-00001", i, 3) for i in (1, 2, 3)]


def test_all_rejected_shard_is_an_empty_file(tmp_path):
    pair = _write_pair(tmp_path, "S1", "000001", size=(8, 8))
    res = write_shard(
        str(tmp_path / "out"), ("test", 0, 1), [pair], CropParams(str(tmp_path), 16, 2, 0, "png")
    )
    assert (res["examples"], len(res["rejected"])) == (0, 1)
    assert (tmp_path / "out" / res["file"]).read_bytes() == b""


def test_memory_is_flat_in_the_number_of_pairs(tmp_path):
    """Peak traced memory (numpy buffers included) for 12 pairs is that of 3 pairs: one pair in flight at a time."""
    import tracemalloc

    pairs = [_write_pair(tmp_path, f"S{i}", f"{i:06d}", size=(96, 128)) for i in range(12)]
    params = CropParams(str(tmp_path), 32, 4, 0, "raw")
    peaks = []
    for count in (3, 12):
        tracemalloc.start()
        write_shard(str(tmp_path / f"out{count}"), ("train", 0, 1), pairs[:count], params)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    frame = 96 * 128 * 3
    assert peaks[1] < peaks[0] + frame  # 9 more pairs would add >= 18 frames if they were all kept
