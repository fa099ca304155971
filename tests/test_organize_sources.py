"""Several datasets in one organized dir, and splits beyond train/test: each source owns its rows, nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from layout_fixtures import mprnet_tree, realblur_tree
from shard_helpers import IN_PROCESS, read_dataset, shard_cfg
from typer.testing import CliRunner

from pipeline import inspect_shards, shard
from pipeline.cli import app
from pipeline.sample import write_sample

runner = CliRunner()


def organize(*args: str):
    return runner.invoke(app, ["organize", *args])


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def by_source(out: Path) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for row in rows(out):
        split_counts = counts.setdefault(row["source"], {})
        split_counts[row["split"]] = split_counts.get(row["split"], 0) + 1
    return counts


def files(out: Path) -> dict[str, int]:
    """Every image in OUT with its inode: a run that leaves a source alone leaves these exactly as they were."""
    return {str(p.relative_to(out)): p.stat().st_ino for p in sorted(out.glob("*/*/*.*"))}


def test_gopro_realblur_and_hide_share_one_out(tmp_path: Path, sample_raw: Path) -> None:
    out = tmp_path / "out"
    realblur = realblur_tree(tmp_path, train=3, test=2)
    hide = mprnet_tree(tmp_path, "HIDE", {"test": 2})
    lists = {
        split: ["--list", f"RealBlur_J_{split}_list.txt", "--split", split] for split in ("train", "test")
    }
    assert organize("--raw", str(sample_raw), "--out", str(out)).exit_code == 0
    gopro_files = files(out)
    result = organize("--raw", str(realblur), "--out", str(out), *lists["train"])
    assert result.exit_code == 0, result.output
    assert f"{out} also holds 12 pairs of other sources (GOPRO_Large 12)" in result.output
    assert organize("--raw", str(realblur), "--out", str(out), *lists["test"]).exit_code == 0
    assert organize("--raw", str(hide), "--out", str(out)).exit_code == 0
    assert by_source(out) == {
        "GOPRO_Large": {"train": 9, "test": 3},
        "RealBlur_J": {"train": 3, "test": 2},
        "HIDE": {"test": 2},
    }
    assert {k: v for k, v in files(out).items() if k in gopro_files} == gopro_files  # GOPRO untouched
    manifest = rows(out)
    assert manifest == sorted(manifest, key=lambda r: (r["split"], r["scene"], r["frame"]))
    # Every rerun is idempotent and keeps the others; GOPRO's names are what a GOPRO-only OUT would hold.
    before, text = files(out), (out / "manifest.jsonl").read_text()
    for args in (
        ["--raw", str(sample_raw)],
        ["--raw", str(realblur), *lists["test"]],
        ["--raw", str(hide)],
    ):
        result = organize(*args, "--out", str(out))
        assert result.exit_code == 0 and " written, " in result.output
        assert "0 written" in result.output and "0 stale removed" in result.output, result.output
    assert files(out) == before and (out / "manifest.jsonl").read_text() == text
    assert {r["a"] for r in manifest if r["source"] == "GOPRO_Large"} == {
        f"{r['split']}/A/{r['scene']}_{r['frame']}.png" for r in manifest if r["source"] == "GOPRO_Large"
    }
    # A pair dropped from RealBlur's train list leaves OUT; its test split and the other sources stay.
    train_list = realblur / "RealBlur_J_train_list.txt"
    train_list.write_text("\n".join(train_list.read_text().splitlines()[1:]) + "\n")
    result = organize("--raw", str(realblur), "--out", str(out), *lists["train"])
    assert (
        result.exit_code == 0
        and "2 stale removed" in result.output
        and "replaced RealBlur_J's previous 3" in result.output
    )
    assert by_source(out)["RealBlur_J"] == {"train": 2, "test": 2} and by_source(out)["HIDE"] == {"test": 2}
    assert not (out / "train/A/RealBlur_J-scene001_1.png").exists()


def test_a_second_source_may_not_take_another_ones_names(tmp_path: Path, sample_raw: Path) -> None:
    """A copy of GOPRO under another name has the same scene names: refused, naming the owner; nothing changes."""
    out = tmp_path / "out"
    assert organize("--raw", str(sample_raw), "--out", str(out)).exit_code == 0
    state, text = files(out), (out / "manifest.jsonl").read_text()
    copy = tmp_path / "moved" / "gopro"
    shutil.copytree(sample_raw, copy)
    result = organize("--raw", str(copy), "--out", str(out))
    assert result.exit_code == 2
    assert "is taken by source GOPRO_Large's pair GOPR0004_09_00 000001" in result.output
    assert "pass --source GOPRO_Large" in result.output
    assert files(out) == state and (out / "manifest.jsonl").read_text() == text
    # Named as the same dataset, the moved copy simply replaces it.
    result = organize("--raw", str(copy), "--out", str(out), "--source", "GOPRO_Large", "--link", "copy")
    assert result.exit_code == 0 and "0 written, 24 unchanged" in result.output and len(rows(out)) == 12
    assert "replaced" not in result.output  # the same pairs: nothing to say


def test_a_manifest_without_sources_is_adopted_by_gopro_only(tmp_path: Path, sample_raw: Path) -> None:
    """An OUT organized before sources existed: a gopro run takes it over, another layout is refused."""
    out = tmp_path / "out"
    assert organize("--raw", str(sample_raw), "--out", str(out)).exit_code == 0
    legacy = [{k: v for k, v in row.items() if k != "source"} for row in rows(out)]
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in legacy))
    realblur = realblur_tree(tmp_path)
    result = organize(
        "--raw", str(realblur), "--out", str(out), "--list", "RealBlur_J_test_list.txt", "--split", "test"
    )
    assert result.exit_code == 2 and "organized before sources were recorded" in result.output
    result = organize("--raw", str(sample_raw), "--out", str(out))
    assert result.exit_code == 0 and "0 written, 24 unchanged" in result.output
    assert {r["source"] for r in rows(out)} == {"GOPRO_Large"}


@pytest.fixture
def with_val(tmp_path: Path) -> Path:
    """A GOPRO tree with train/, val/ and test/."""
    raw = tmp_path / "GOPRO_val"
    write_sample(raw, scenes=4, frames=2, size=(64, 48), seed=3)
    shutil.copytree(
        raw / "train" / sorted(p.name for p in (raw / "train").iterdir())[0], raw / "val" / "GOPR0100_07_00"
    )
    return raw


def test_a_val_split_organizes_shards_and_cleans_like_the_others(tmp_path: Path, with_val: Path) -> None:
    out = tmp_path / "out"
    result = organize("--raw", str(with_val), "--out", str(out))
    assert result.exit_code == 0 and "organized 6 train + 2 val + 2 test pairs" in result.output
    assert sorted(p.name for p in (out / "val" / "A").iterdir()) == [
        "GOPR0100_07_00_000001.png",
        "GOPR0100_07_00_000002.png",
    ]
    # A vanished val frame leaves OUT (stale removal covers every split), and a vanished split with it.
    (with_val / "val" / "GOPR0100_07_00" / "sharp" / "000002.png").unlink()
    assert "2 stale removed" in organize("--raw", str(with_val), "--out", str(out)).output
    assert sorted(p.name for p in (out / "val" / "B").iterdir()) == ["GOPR0100_07_00_000001.png"]
    # shard takes any split name: shard.shards.val
    shards = tmp_path / "shards"
    shard.run(shard_cfg(out, shards, shards={"train": 2, "val": 1, "test": 1}), beam_args=IN_PROCESS)
    meta, _ = read_dataset(shards)
    assert {s: (v["pairs"], len(v["shards"])) for s, v in meta["splits"].items()} == {
        "train": (6, 2),
        "val": (1, 1),
        "test": (2, 1),
    }
    inspect_shards.run(str(shards))
    shutil.rmtree(with_val / "val")
    result = organize("--raw", str(with_val), "--out", str(out))
    assert (
        result.exit_code == 0
        and "1 stale removed" not in result.output
        and "2 stale removed" in result.output
    )
    assert {r["split"] for r in rows(out)} == {"train", "test"} and list((out / "val" / "A").iterdir()) == []
