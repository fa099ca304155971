"""The Beam shard pipeline: each stage on TestPipeline, options pass-through, and end-to-end runs on a sample tree."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, GoogleCloudOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from shard_helpers import (
    IN_PROCESS,
    copy_organized,
    manifest_rows,
    read_dataset,
    read_rejected,
    read_rgb,
    read_shard,
    shard_cfg,
    write_manifest,
)
from typer.testing import CliRunner

from pipeline import inspect_shards, shard
from pipeline.beam_runner import pipeline_options
from pipeline.cli import app
from pipeline.config import ShardConfig
from pipeline.crops import crop_offsets
from pipeline.errors import UsageError
from pipeline.manifest import Pair, parse_manifest_line
from pipeline.records import decode_image
from pipeline.shard_writer import CropParams


def _pipeline() -> BeamTestPipeline:
    return BeamTestPipeline(
        runner=FnApiRunner()
    )  # in-process; Beam's DirectRunner would first try to fetch Prism


def _pairs(organized: Path) -> list[Pair]:
    return [parse_manifest_line(json.dumps(r), "m") for r in manifest_rows(organized)]


@pytest.fixture(scope="module")
def published(organized_dir, tmp_path_factory):
    """organized_dir sharded through the CLI with the default local runner (one worker process per core)."""
    out = tmp_path_factory.mktemp("published") / "shards"
    args = ["shard", "--src", str(organized_dir), "--out", str(out), "--crop", "32", "--crops-per-pair", "3",
            "--shards", "4", "--seed", "5", "--runner", "DirectRunner"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "shard: 12 pairs (test 3, train 9) from" in result.output  # start line
    assert "shard: 12 pairs, 36 examples, 0 rejected," in result.output  # the summary line
    assert "pairs/s) ->" in result.output
    return out


# ---- stages ---------------------------------------------------------------------------------------------------


def test_read_manifest_stage(organized_dir):
    with _pipeline() as p:
        pairs = p | shard.ReadManifest(str(organized_dir / "manifest.jsonl"))
        assert_that(pairs, equal_to(_pairs(organized_dir)))


def test_assign_shards_stage(organized_dir):
    pairs = _pairs(organized_dir)  # 9 train + 3 test, sorted by (split, scene, frame)
    train = [p for p in pairs if p.split == "train"]
    expected = [(("train", i, 2), sorted(train[i::2])) for i in range(2)]
    expected += [(("test", i, 3), [p]) for i, p in enumerate(p for p in pairs if p.split == "test")]
    with _pipeline() as p:
        keyed = (
            p
            | beam.Create(list(reversed(pairs)))
            | shard.AssignShards({"train": 2, "test": 5})  # test: 5 shards capped at its 3 pairs
            | beam.MapTuple(lambda key, group: (key, sorted(group)))
        )
        assert_that(keyed, equal_to(expected))


def test_write_shards_stage_counts_metrics(organized_dir, tmp_path):
    src = copy_organized(organized_dir, tmp_path / "organized")
    pairs = [p for p in _pairs(src) if p.split == "test"]
    (src / pairs[1].a).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    params = CropParams(str(src), 32, 2, 0, "raw")
    (tmp_path / "out").mkdir()  # run() has publish.prepare make the staging dir; the stage never creates it
    p = _pipeline()
    results = p | beam.Create([(("test", 0, 1), pairs)]) | shard.WriteShards(str(tmp_path / "out"), params)
    assert_that(results | beam.Map(lambda r: (r["file"], r["pairs"], r["examples"], len(r["rejected"]))),
                equal_to([("gopro-test.tfrecord-00000-of-00001", 3, 4, 1)]))  # fmt: skip
    outcome = p.run()
    outcome.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in outcome.metrics().query(MetricsFilter())["counters"]}
    assert counters["pairs"] == 3 and counters["examples"] == 4 and counters["rejected"] == 1
    assert counters["bytes"] == (tmp_path / "out" / "gopro-test.tfrecord-00000-of-00001").stat().st_size
    assert len(read_shard(tmp_path / "out" / "gopro-test.tfrecord-00000-of-00001")) == 4


def test_write_metadata_stage(tmp_path):
    results = [
        {"split": "train", "index": 1, "count": 2, "file": "b", "pairs": 2, "examples": 4, "bytes": 9,
         "rejected": [{"split": "train", "scene": "S", "frame": "2", "reason": "unreadable"}]},
        {"split": "train", "index": 0, "count": 2, "file": "a", "pairs": 2, "examples": 6, "bytes": 9, "rejected": []},
    ]  # fmt: skip
    with _pipeline() as p:
        meta = p | beam.Create(results) | shard.WriteMetadata(str(tmp_path), {"seed": 3})
        assert_that(meta | beam.Map(lambda m: m["splits"]["train"]["examples"]), equal_to([10]))
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["seed"] == 3
    assert meta["splits"]["train"] == {"pairs": 4, "examples": 10, "rejected": 1,
        "shards": [{"file": "a", "examples": 6}, {"file": "b", "examples": 4}]}  # fmt: skip
    assert read_rejected(tmp_path) == [{"split": "train", "scene": "S", "frame": "2", "reason": "unreadable"}]


# ---- options --------------------------------------------------------------------------------------------------


def test_cluster_runner_args_reach_pipeline_options():
    cfg = ShardConfig(
        runner="DirectRunner", beam_options={"job_name": "gopro", "num_workers": 4, "labels": ["a=1", "b=2"]}
    )
    args = ["--runner", "DataflowRunner", "--project", "p", "--temp_location", "gs://b/t", "--num_workers=8"]
    opts = pipeline_options(cfg, args)
    assert opts.view_as(StandardOptions).runner == "DataflowRunner"
    gcp = opts.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.temp_location, gcp.job_name, gcp.labels) == (
        "p",
        "gs://b/t",
        "gopro",
        ["a=1", "b=2"],
    )
    assert opts.get_all_options()["num_workers"] == 8  # the command line beats pipeline.yaml
    flink = pipeline_options(ShardConfig(runner="FlinkRunner"), ["--flink_master", "host:8081"])
    assert flink.view_as(StandardOptions).runner == "FlinkRunner"
    assert flink.get_all_options()["flink_master"] == "host:8081"


def test_local_runner_is_in_process_fnapi_on_all_cores():
    opts = pipeline_options(ShardConfig(), [])
    assert opts.view_as(StandardOptions).runner == "FnApiRunner"
    direct = opts.view_as(DirectOptions)
    assert (direct.direct_running_mode, direct.direct_num_workers) == ("multi_processing", 0)
    mine = pipeline_options(ShardConfig(runner="DataflowRunner"), ["--runner=DirectRunner", *IN_PROCESS])
    direct = mine.view_as(DirectOptions)
    assert mine.view_as(StandardOptions).runner == "FnApiRunner"
    assert (direct.direct_running_mode, direct.direct_num_workers) == ("in_memory", 1)


def test_cli_passes_beam_args_through(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(
        shard, "run", lambda cfg, overwrite, beam_args: seen.update(cfg=cfg, beam_args=beam_args)
    )
    args = ["shard", "--src", "gs://bkt/organized", "--out", "gs://bkt/shards", "--runner", "DataflowRunner",
            "--shards", "16", "--", "--project", "p", "--temp_location", "gs://b/t"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["beam_args"] == ["--project", "p", "--temp_location", "gs://b/t"]
    assert (seen["cfg"].runner, seen["cfg"].src, seen["cfg"].shards.train) == (
        "DataflowRunner",
        "gs://bkt/organized",
        16,
    )
    opts = pipeline_options(seen["cfg"], seen["beam_args"])
    assert opts.view_as(GoogleCloudOptions).project == "p"


def test_runner_problems_are_usage_errors(organized_dir, tmp_path):
    cfg = shard_cfg(organized_dir, tmp_path / "out", runner="NoSuchRunner")
    with pytest.raises(UsageError, match="--runner NoSuchRunner: Unexpected pipeline runner"):
        shard.run(cfg)
    assert not (tmp_path / "out").exists() and os.listdir(tmp_path) == []


# ---- end to end -----------------------------------------------------------------------------------------------


def test_end_to_end_dataset(published, organized_dir):
    meta, shards = read_dataset(published)
    rows = manifest_rows(organized_dir)
    assert (meta["format_version"], meta["crop_size"], meta["crops_per_pair"], meta["seed"]) == (2, 32, 3, 5)
    assert meta["encoding"] == ShardConfig().encoding and meta["blur"] == "blur_gamma"
    assert meta["source_manifest_sha256"] and meta["created"] and meta["tool_version"]
    assert {s: (v["pairs"], v["examples"], v["rejected"]) for s, v in meta["splits"].items()} == {
        "train": (9, 27, 0),
        "test": (3, 9, 0),
    }
    assert meta["splits"]["train"]["sources"] == {"GOPRO_Large": {"pairs": 9, "examples": 27, "rejected": 0}}
    assert {rec.source for recs in shards.values() for rec in recs} == {"GOPRO_Large"}
    assert [s["file"] for s in meta["splits"]["train"]["shards"]] == [
        f"gopro-train.tfrecord-{i:05d}-of-00004" for i in range(4)
    ]
    assert [s["examples"] for s in meta["splits"]["train"]["shards"]] == [9, 6, 6, 6]  # 9 pairs round-robin
    assert [s["file"] for s in meta["splits"]["test"]["shards"]] == [
        "gopro-test.tfrecord-00000-of-00002",
        "gopro-test.tfrecord-00001-of-00002",
    ]
    for name, recs in shards.items():
        assert len(recs) == next(
            s["examples"] for v in meta["splits"].values() for s in v["shards"] if s["file"] == name
        )
    assert sorted(os.listdir(published.parent)) == ["shards"]  # no staging dir left
    assert read_rejected(published) == [] and len(rows) == 12
    inspect_shards.run(str(published))


def test_every_record_is_the_organized_pair_at_its_offset(published, organized_dir):
    meta, shards = read_dataset(published)
    rows = {(r["scene"], r["frame"]): r for r in manifest_rows(organized_dir)}
    seen = set()
    for recs in shards.values():
        for rec in recs:
            row = rows[(rec.scene, rec.frame)]
            a, b = read_rgb(organized_dir / row["a"]), read_rgb(organized_dir / row["b"])
            window = (slice(rec.y, rec.y + 32), slice(rec.x, rec.x + 32))
            assert np.array_equal(decode_image(rec.blur, meta["encoding"], 32, 32), a[window])
            assert np.array_equal(decode_image(rec.sharp, meta["encoding"], 32, 32), b[window])
            seen.add((rec.scene, rec.frame, rec.y, rec.x))
    for (scene, frame), row in rows.items():
        for y, x in crop_offsets(5, scene, frame, 3, row["height"], row["width"], 32):
            assert (scene, frame, y, x) in seen


def test_same_seed_same_bytes_on_any_runner_other_seed_other_offsets(published, organized_dir, tmp_path):
    again = tmp_path / "again"
    shard.run(shard_cfg(organized_dir, again, shards={"train": 4, "test": 2}, seed=5, encoding=ShardConfig().encoding),
              beam_args=IN_PROCESS)  # fmt: skip
    _, first = read_dataset(published)
    for name in first:
        assert (again / name).read_bytes() == (published / name).read_bytes(), name
    other = tmp_path / "other"
    shard.run(shard_cfg(organized_dir, other, shards={"train": 4, "test": 2}, seed=6), beam_args=IN_PROCESS)
    _, second = read_dataset(other)
    offsets = lambda shards: {(r.scene, r.frame, r.y, r.x) for recs in shards.values() for r in recs}  # noqa: E731
    assert offsets(first) != offsets(second)
    assert {k[:2] for k in offsets(first)} == {k[:2] for k in offsets(second)}


def test_tensorflow_reads_what_tfrecord_lite_reads(published):
    import tensorflow as tf

    from pipeline.records import tf_parse

    meta, shards = read_dataset(published)
    for name, recs in shards.items():
        parsed = list(
            tf.data.TFRecordDataset(str(published / name)).map(lambda s: tf_parse(s, meta["encoding"]))
        )
        assert len(parsed) == len(recs)
        for ex, rec in zip(parsed, recs, strict=True):
            assert (int(ex["y"]), int(ex["x"]), int(ex["height"]), int(ex["width"])) == (rec.y, rec.x, 32, 32)
            assert (ex["scene"].numpy().decode(), ex["frame"].numpy().decode()) == (rec.scene, rec.frame)
            assert np.array_equal(ex["blur"].numpy(), decode_image(rec.blur, meta["encoding"], 32, 32))
            assert np.array_equal(ex["sharp"].numpy(), decode_image(rec.sharp, meta["encoding"], 32, 32))


def test_bad_pairs_are_rejected_not_fatal(organized_dir, tmp_path):
    src = copy_organized(organized_dir, tmp_path / "organized")
    rows = manifest_rows(src)
    data = (src / rows[4]["b"]).read_bytes()
    (src / rows[4]["b"]).write_bytes(data[: len(data) // 3])  # truncated PNG
    (src / rows[7]["a"]).write_bytes((src / rows[0]["a"]).read_bytes())  # fine: same size, other content
    import cv2

    cv2.imwrite(
        str(src / rows[9]["a"]), np.zeros((48, 64, 3), np.uint8)
    )  # size mismatch found only on decode
    out = tmp_path / "shards"
    meta = shard.run(shard_cfg(src, out, encoding="raw"), beam_args=IN_PROCESS)
    rejected = read_rejected(out)
    assert sorted((r["scene"], r["frame"], r["reason"]) for r in rejected) == [
        (rows[4]["scene"], rows[4]["frame"], "unreadable"),
        (rows[9]["scene"], rows[9]["frame"], "size_mismatch"),
    ]
    assert {r["path"] for r in rejected} == {str(src / rows[4]["b"]), str(src / rows[9]["b"])}
    for v in meta["splits"].values():
        written = len({(r.scene, r.frame) for f in v["shards"] for r in read_shard(out / f["file"])})
        assert v["pairs"] == written + v["rejected"]
        assert v["examples"] == 3 * written
    assert sum(v["rejected"] for v in meta["splits"].values()) == 2
    inspect_shards.run(str(out))


def test_a_crop_larger_than_every_frame_is_refused_before_beam_starts(organized_dir, tmp_path, monkeypatch):
    """The manifest has every frame's size: a crop no frame fits is a usage error up front (exit 2), not a whole
    pipeline run that rejects every pair as too_small."""
    monkeypatch.setattr(shard, "new_pipeline", lambda options: pytest.fail("Beam started"))
    manifest = organized_dir / "manifest.jsonl"
    with pytest.raises(UsageError) as info:
        shard.run(shard_cfg(organized_dir, tmp_path / "out", crop_size=97), beam_args=IN_PROCESS)
    assert str(info.value) == (
        f"--crop 97 is larger than every frame (largest 128x96 in {manifest}); use --crop 96 or less"
    )
    result = CliRunner().invoke(
        app, ["shard", "--src", str(organized_dir), "--out", str(tmp_path / "out"), "--crop", "512"]
    )
    assert result.exit_code == 2
    assert f"error: --crop 512 is larger than every frame (largest 128x96 in {manifest})" in result.output
    assert os.listdir(tmp_path) == []


def test_frames_smaller_than_the_crop_are_counted_up_front_and_rejected(organized_dir, tmp_path, capsys):
    src = copy_organized(organized_dir, tmp_path / "organized")
    rows = manifest_rows(src)
    rows[0] = {**rows[0], "width": 16}  # the manifest can say so before any decoding
    write_manifest(src, rows)
    shard.run(shard_cfg(src, tmp_path / "out"), beam_args=IN_PROCESS)
    assert "shard: 1 of 12 pairs are smaller than the 32px crop: too_small" in capsys.readouterr().err
    assert [(r["reason"], r["detail"]) for r in read_rejected(tmp_path / "out")] == [
        ("too_small", "16x96 frame, 32px crop")
    ]


def test_missing_manifest_is_a_data_error(tmp_path):
    result = CliRunner().invoke(
        app, ["shard", "--src", str(tmp_path / "organized"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'organized' / 'manifest.jsonl'}: no manifest" in result.output
    assert os.listdir(tmp_path) == []


def test_rerun_over_published_dataset(published, organized_dir, tmp_path):
    out = tmp_path / "shards"
    copy_organized(published, out)
    args = [
        "shard",
        "--src",
        str(organized_dir),
        "--out",
        str(out),
        "--crop",
        "32",
        "--crops-per-pair",
        "2",
        "--shards",
        "2",
    ]
    refused = CliRunner().invoke(app, [*args, "--", *IN_PROCESS])
    assert refused.exit_code == 2
    assert "already holds a published dataset; pass --overwrite" in refused.output
    assert json.loads((out / "dataset.json").read_text())["crops_per_pair"] == 3
    done = CliRunner().invoke(app, [*args, "--overwrite", "--", *IN_PROCESS])
    assert done.exit_code == 0, done.output
    assert json.loads((out / "dataset.json").read_text())["crops_per_pair"] == 2
    assert sorted(os.listdir(tmp_path)) == ["shards"]
    assert not (
        out / "gopro-train.tfrecord-00003-of-00004"
    ).exists()  # the old shards went with the old dataset


def test_killed_run_leaves_the_earlier_dataset(published, organized_dir, tmp_path):
    out = tmp_path / "shards"
    copy_organized(published, out)
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    cmd = [sys.executable, "-m", "pipeline.cli", "shard", "--src", str(organized_dir), "--out", str(out),
           "--crop", "32", "--crops-per-pair", "1000", "--overwrite", "--", *IN_PROCESS]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    written: list[str] = []
    while not written and time.monotonic() < deadline and proc.poll() is None:
        staging = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith("shards.tmp-")]
        written = [n for d in staging if d.is_dir() for n in os.listdir(d) if n.startswith("gopro-")]
        time.sleep(0.005)
    assert written and proc.poll() is None, "the run should be writing shards into its staging dir"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    inspect_shards.run(str(out))
    meta = shard.run(shard_cfg(organized_dir, out, crops_per_pair=2), overwrite=True, beam_args=IN_PROCESS)
    assert meta["crops_per_pair"] == 2
    assert sorted(os.listdir(tmp_path)) == ["shards"]  # the killed run's staging dir was cleaned up
    inspect_shards.run(str(out))


def test_symlinked_out_is_published_where_it_points(organized_dir, tmp_path):
    """data/shards -> /big/disk/shards: the dataset lands on the big disk and the link stays a link."""
    target = tmp_path / "big" / "shards"
    target.mkdir(parents=True)
    link = tmp_path / "shards"
    link.symlink_to(target)
    shard.run(shard_cfg(organized_dir, link), beam_args=IN_PROCESS)
    assert link.is_symlink() and (target / "dataset.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "big",
        "shards",
    ]  # nothing renamed aside or left over
