"""`gopro-prep organize --layout gopro|pairs|list|auto`: each layout's tiny tree, detection, and the errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from layout_fixtures import (
    REALBLUR_DIR,
    frame_pair,
    hide_tree,
    mprnet_tree,
    realblur_tree,
    restormer_flat,
    write_image,
)
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.layouts.list_file import list_source
from pipeline.organize import plan

runner = CliRunner()


def organize(*args: str):
    return runner.invoke(app, ["organize", *args])


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]


def test_pairs_layout_on_an_mprnet_tree(tmp_path: Path) -> None:
    """HIDE/test/{input,target}: detected, pairs by name, junk skipped, defects rejected, hardlinks into OUT."""
    raw = mprnet_tree(tmp_path, "HIDE", {"test": 4, "train": 2})
    (raw / "test" / "target" / "0001.png").unlink()  # missing sharp twin
    write_image(raw / "test" / "target" / "0002.png", np.zeros((10, 12, 3), np.uint8))  # size mismatch
    blur3 = raw / "test" / "input" / "0003.png"  # a JPEG blur pairs with a PNG sharp by name
    write_image(blur3.with_suffix(".jpg"), frame_pair("x")[0])
    blur3.unlink()
    (raw / "test" / "input" / "Thumbs.db").write_bytes(b"junk")
    out = tmp_path / "out"
    result = organize("--raw", str(raw), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "layout: pairs (detected: {test,train}/{input,target}); source: HIDE" in result.output
    assert "organized 2 train + 2 test pairs of HIDE into" in result.output
    got = rows(out)
    assert [(r["split"], r["scene"], r["frame"], r["a"], r["b"], r["source"], r["blur"]) for r in got] == [
        ("test", "HIDE", "0000", "test/A/HIDE_0000.png", "test/B/HIDE_0000.png", "HIDE", None),
        ("test", "HIDE", "0003", "test/A/HIDE_0003.jpg", "test/B/HIDE_0003.png", "HIDE", None),
        ("train", "HIDE", "0000", "train/A/HIDE_0000.png", "train/B/HIDE_0000.png", "HIDE", None),
        ("train", "HIDE", "0001", "train/A/HIDE_0001.png", "train/B/HIDE_0001.png", "HIDE", None),
    ]
    assert (out / "test/A/HIDE_0000.png").stat().st_ino == (raw / "test/input/0000.png").stat().st_ino
    assert (out / "test/B/HIDE_0003.png").read_bytes() == (raw / "test/target/0003.png").read_bytes()
    assert {(r["path"], r["reason"], r["split"], r["source"]) for r in rejects(out)} == {
        (str(raw / "test/input/0001.png"), "missing_sharp", "test", "HIDE"),
        (str(raw / "test/input/0002.png"), "size_mismatch", "test", "HIDE"),
    }
    again = organize("--raw", str(raw), "--out", str(out))
    assert again.exit_code == 0 and "0 written, 8 unchanged, 0 stale removed" in again.output


def test_hide_layout_pairs_blurred_frames_with_gt_by_name(tmp_path: Path) -> None:
    """HIDE_dataset as shipped: detected, test subsets become scenes, unused GT frames are no rejects, a blurred
    frame without its GT twin is missing_sharp, --split picks one split."""
    raw = hide_tree(tmp_path, train=2, close_ups=2, long_shots=2)
    (raw / "GT" / "5_hide.png").unlink()  # the second long shot loses its sharp frame
    out = tmp_path / "out"
    result = organize("--raw", str(raw), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "layout: hide (detected: GT/ + {test,train}/); source: HIDE" in result.output
    got = [(r["split"], r["scene"], r["frame"], r["a"], r["b"], r["source"]) for r in rows(out)]
    assert got == [
        (
            "test",
            "HIDE-close-ups",
            "2_hide",
            "test/A/HIDE-close-ups_2_hide.png",
            "test/B/HIDE-close-ups_2_hide.png",
            "HIDE",
        ),
        (
            "test",
            "HIDE-close-ups",
            "3_hide",
            "test/A/HIDE-close-ups_3_hide.png",
            "test/B/HIDE-close-ups_3_hide.png",
            "HIDE",
        ),
        (
            "test",
            "HIDE-long-shot",
            "4_hide",
            "test/A/HIDE-long-shot_4_hide.png",
            "test/B/HIDE-long-shot_4_hide.png",
            "HIDE",
        ),
        ("train", "HIDE", "0_hide", "train/A/HIDE_0_hide.png", "train/B/HIDE_0_hide.png", "HIDE"),
        ("train", "HIDE", "1_hide", "train/A/HIDE_1_hide.png", "train/B/HIDE_1_hide.png", "HIDE"),
    ]
    assert (out / "test/B/HIDE-long-shot_4_hide.png").read_bytes() == (raw / "GT/4_hide.png").read_bytes()
    assert [(r["path"], r["reason"]) for r in rejects(out)] == [
        (str(raw / "test/test-long-shot/5_hide.png"), "missing_sharp")
    ]
    only = tmp_path / "only_test"
    result = organize("--raw", str(raw), "--out", str(only), "--split", "test", "--source", "HIDE_x")
    assert result.exit_code == 0, result.output
    assert {(r["split"], r["scene"]) for r in rows(only)} == {
        ("test", "HIDE_x-close-ups"),
        ("test", "HIDE_x-long-shot"),
    }
    bad = organize("--raw", str(raw), "--out", str(tmp_path / "o3"), "--split", "val")
    assert bad.exit_code == 2 and "--split val: not in" in bad.output


def test_pairs_layout_without_a_split_folder_needs_split(tmp_path: Path) -> None:
    raw = restormer_flat(tmp_path, "HIDE", count=2)
    out = tmp_path / "out"
    result = organize("--raw", str(raw), "--out", str(out))
    assert result.exit_code == 2
    assert "--split NAME is needed" in result.output and "input/ and target/ directly" in result.output
    assert not out.exists()
    result = organize("--raw", str(raw), "--out", str(out), "--split", "test")
    assert result.exit_code == 0, result.output
    assert [(r["split"], r["a"], r["source"]) for r in rows(out)] == [
        ("test", "test/A/HIDE_0000.png", "HIDE"),
        ("test", "test/A/HIDE_0001.png", "HIDE"),
    ]


def test_pairs_layout_with_any_two_folders(tmp_path: Path) -> None:
    """--blur-dir/--sharp-dir relative to --raw, any split name; the source is the folder both sit in."""
    raw = tmp_path / "MyCamera"
    for i in range(3):
        blur, sharp = frame_pair(f"cam/{i}")
        write_image(raw / "shaky" / f"img_{i}.png", blur)
        write_image(raw / "tripod" / f"img_{i}.png", sharp)
    out = tmp_path / "out"
    args = ("--raw", str(raw), "--out", str(out), "--blur-dir", "shaky", "--sharp-dir", "tripod")
    result = organize(*args, "--split", "val", "--link", "copy")
    assert result.exit_code == 0, result.output
    assert "organized 3 val pairs of MyCamera into" in result.output
    assert [r["a"] for r in rows(out)] == [f"val/A/MyCamera_img_{i}.png" for i in range(3)]
    assert organize(*args).exit_code == 2  # no --split
    result = organize(*args[:-2], "--blur-dir", "nowhere", "--sharp-dir", "tripod", "--split", "val")
    assert result.exit_code == 2 and "--blur-dir nowhere: not found" in result.output


def test_list_layout_on_a_realblur_tree(tmp_path: Path) -> None:
    """RealBlur_J_{train,test}_list.txt: `gt_path blur_path` lines; two runs give the source both splits."""
    raw = realblur_tree(tmp_path, train=3, test=2)
    train_list = raw / "RealBlur_J_train_list.txt"
    text = train_list.read_text().splitlines()
    text.insert(
        1, f"# a comment\n{REALBLUR_DIR}/scene099/gt/gt_9.png {REALBLUR_DIR}/scene099/blur/blur_9.png"
    )
    train_list.write_text("\n".join(text) + "\n\n")
    out = tmp_path / "out"
    result = organize(
        "--raw", str(raw), "--out", str(out), "--list", "RealBlur_J_train_list.txt", "--split", "train"
    )
    assert result.exit_code == 0, result.output
    assert "organized 3 train pairs of RealBlur_J into" in result.output
    got = rows(out)
    assert [(r["scene"], r["frame"], r["a"], r["b"]) for r in got] == [
        (
            f"RealBlur_J-scene00{i}",
            str(i),
            f"train/A/RealBlur_J-scene00{i}_{i}.png",
            f"train/B/RealBlur_J-scene00{i}_{i}.png",
        )
        for i in (1, 2, 3)
    ]
    assert (out / got[0]["a"]).read_bytes() == (raw / REALBLUR_DIR / "scene001/blur/blur_1.png").read_bytes()
    assert (out / got[0]["b"]).read_bytes() == (raw / REALBLUR_DIR / "scene001/gt/gt_1.png").read_bytes()
    [missing] = rejects(out)
    assert (missing["reason"], missing["split"], missing["source"]) == ("missing_blur", "train", "RealBlur_J")
    assert missing["detail"].startswith("RealBlur_J_train_list.txt:3: ") and "nor" in missing["detail"]
    # The test list adds the test split of the same source; the train split stays as it was.
    test_list = str(raw / "RealBlur_J_test_list.txt")  # a path as given works as well as one relative to RAW
    result = organize("--raw", str(raw), "--out", str(out), "--list", test_list, "--split", "test")
    assert result.exit_code == 0, result.output
    assert [(r["split"], r["frame"]) for r in rows(out)] == [("test", "1"), ("test", "2")] + [
        ("train", str(i)) for i in (1, 2, 3)
    ]
    assert len(rejects(out)) == 1  # the train list's reject is kept


def test_a_bad_list_line_names_the_file_and_line(tmp_path: Path) -> None:
    raw = realblur_tree(tmp_path, train=1, test=1)
    (raw / "bad_list.txt").write_text("a.png b.png\nonly-one-path.png\n")
    result = organize(
        "--raw", str(raw), "--out", str(tmp_path / "o"), "--list", "bad_list.txt", "--split", "x"
    )
    assert result.exit_code == 1
    assert f"{raw / 'bad_list.txt'}:2: expected `sharp_path blur_path`, got 1 field(s)" in result.output


def test_list_source_names() -> None:
    assert list_source(Path("RealBlur_J_train_list.txt"), "train") == "RealBlur_J"
    assert list_source(Path("RealBlur_R_test_list.txt"), "test") == "RealBlur_R"
    assert list_source(Path("my pairs.txt"), "val") == "my_pairs"


def test_auto_detection_names_what_it_found_or_the_candidates(tmp_path: Path, sample_raw: Path) -> None:
    out = tmp_path / "out"
    realblur = realblur_tree(tmp_path, train=1, test=1)
    result = organize("--raw", str(realblur), "--out", str(out))
    assert result.exit_code == 2
    assert (
        f"--layout list needs --list FILE: {realblur} holds RealBlur_J_test_list.txt, "
        "RealBlur_J_train_list.txt; pass --list FILE --split NAME" in result.output
    )
    assert "no known layout" not in result.output and "ambiguous" not in result.output
    # A GOPRO tree that also holds input/target folders: both candidates named, nothing written.
    both = mprnet_tree(tmp_path, "both", {"test": 1})
    shutil.copytree(sample_raw / "train", both / "train")
    result = organize("--raw", str(both), "--out", str(out))
    assert result.exit_code == 2 and "ambiguous layout" in result.output
    assert "gopro (train/GOPR0001_11_00/{blur,blur_gamma,sharp})" in result.output
    assert "pairs (test/{input,target})" in result.output and "pass --layout NAME" in result.output
    result = organize("--raw", str(both), "--out", str(out), "--layout", "pairs", "--link", "copy")
    assert result.exit_code == 0 and "organized 1 test pairs of both" in result.output
    (tmp_path / "empty").mkdir()
    result = organize("--raw", str(tmp_path / "empty"), "--out", str(out))
    assert result.exit_code == 2 and "no known layout found; expected gopro: SPLIT/SCENE/" in result.output
    assert "pairs: SPLIT/{input,target}" in result.output and "list: --list FILE" in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--layout", "gopro", "--list", "x.txt"], "--list applies to --layout list, not gopro"),
        (["--layout", "list", "--blur-dir", "a", "--sharp-dir", "b"], "--blur-dir applies to --layout pairs"),
        (["--layout", "gopro", "--split", "test"], "--split applies to --layout pairs or list"),
        (["--layout", "list", "--split", "test"], "--layout list needs --list FILE"),
        (["--list", "RealBlur_J_train_list.txt"], "--split NAME is needed: a pair list holds one split"),
        (["--blur-dir", "a"], "--blur-dir and --sharp-dir go together"),
        (["--list", "RealBlur_J_train_list.txt", "--split", "a b"], "split"),
        (["--list", "RealBlur_J_train_list.txt", "--split", "t", "--source", "../x"], "source"),
    ],
)
def test_options_of_another_layout_are_usage_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    raw = realblur_tree(tmp_path, train=1, test=1)
    result = organize("--raw", str(raw), "--out", str(tmp_path / "out"), *flags)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_plan_of_each_layout_says_its_splits(tmp_path: Path, sample_raw: Path) -> None:
    gopro = plan(sample_raw)
    assert (gopro.layout, gopro.source, gopro.splits, gopro.whole_source) == (
        "gopro",
        "GOPRO_Large",
        ("test", "train"),
        True,
    )
    pairs = plan(mprnet_tree(tmp_path, "GoPro", {"test": 1, "val": 1}))
    assert (pairs.layout, pairs.splits, pairs.whole_source) == ("pairs", ("test", "val"), True)
    one = plan(mprnet_tree(tmp_path, "GoPro2", {"test": 1, "val": 1}), split="val")
    assert (one.splits, one.whole_source, [p.split for p in one.pairs]) == (("val",), False, ["val"])
    listed = plan(realblur_tree(tmp_path), list_file="RealBlur_J_test_list.txt", split="test")
    assert (listed.layout, listed.source, listed.splits, listed.whole_source) == (
        "list",
        "RealBlur_J",
        ("test",),
        False,
    )
