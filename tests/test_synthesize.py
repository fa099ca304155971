"""`gopro-prep synthesize`: GOPRO_Large_all-style sharp frames -> GOPRO_Large triples with the blur recipe."""

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.blur import gamma_mean_frame, mean_frame
from pipeline.cli import app
from pipeline.errors import DataError, UsageError
from pipeline.organize import plan
from pipeline.synthesize import parse_window, run, window_sizes


def make_frames(root, split="train", scene="GOPR0372_07_00", n=22, size=(24, 16)):
    """Sharp frames whose pixels differ per frame and per position; returns them by stem."""
    folder = root / split / scene
    folder.mkdir(parents=True)
    rng = np.random.default_rng(n)
    frames = {}
    for i in range(1, n + 1):
        image = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:06d}.png"), image)
        frames[f"{i:06d}"] = image
    (folder / ".DS_Store").write_bytes(b"\0junk")
    (folder / "notes.txt").write_text("not a frame")
    return frames


def read(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_parse_window():
    assert parse_window("7..13") == (7, 13)
    assert parse_window("9") == (9, 9)
    assert parse_window(" 3 .. 3 ") == (3, 3)
    for bad in ("", "0", "13..7", "7-13", "a..b", "7..", "2000"):
        with pytest.raises(UsageError, match="--window"):
            parse_window(bad)


def test_window_sizes_fit_and_stay_in_range():
    rng = np.random.default_rng(0)
    sizes = window_sizes(100, (7, 13), rng)
    assert all(7 <= s <= 13 for s in sizes) and sum(sizes) <= 100 and sum(sizes) + 13 > 100
    assert window_sizes(22, (5, 5), rng) == [5, 5, 5, 5]
    assert window_sizes(4, (5, 5), rng) == []


def test_fixed_window_recipe_and_names(tmp_path):
    frames = make_frames(tmp_path / "all")
    assert run(tmp_path / "all", tmp_path / "out", window=(5, 5), gamma=2.2) == 4
    scene = tmp_path / "out" / "train" / "GOPR0372_07_00"
    # Non-overlapping windows 1-5, 6-10, 11-15, 16-20 named after their middle frame; 21-22 dropped.
    names = ["000003.png", "000008.png", "000013.png", "000018.png"]
    for folder in ("blur", "blur_gamma", "sharp"):
        assert sorted(p.name for p in (scene / folder).iterdir()) == names
    for k, name in enumerate(names):
        window = np.stack([frames[f"{i:06d}"] for i in range(5 * k + 1, 5 * k + 6)])
        np.testing.assert_array_equal(read(scene / "blur" / name), mean_frame(window))
        np.testing.assert_array_equal(read(scene / "blur_gamma" / name), gamma_mean_frame(window, 2.2))
        np.testing.assert_array_equal(read(scene / "sharp" / name), frames[name[:-4]])


def test_gamma_option(tmp_path):
    frames = make_frames(tmp_path / "all", n=3)
    run(tmp_path / "all", tmp_path / "out", window=(3, 3), gamma=1.0)
    scene = tmp_path / "out" / "train" / "GOPR0372_07_00"
    window = np.stack(list(frames.values()))
    # gamma 1.0: the linear-light mean is the plain mean.
    np.testing.assert_array_equal(read(scene / "blur_gamma" / "000002.png"), mean_frame(window))


def test_range_window_is_seeded_and_organizable(tmp_path):
    make_frames(tmp_path / "all", n=40)
    make_frames(tmp_path / "all", split="test", scene="GOPR0384_11_00", n=12)
    n1 = run(tmp_path / "all", tmp_path / "a", window=(3, 6), seed=7)
    n2 = run(tmp_path / "all", tmp_path / "b", window=(3, 6), seed=7)
    a_files = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*.png"))
    b_files = sorted(str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b").rglob("*.png"))
    assert n1 == n2 and a_files == b_files
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in a_files)
    p = plan(tmp_path / "a", "blur_gamma")
    assert not p.rejects and len(p.pairs) == n1
    assert {pair.split for pair in p.pairs} == {"train", "test"}


def test_errors(tmp_path):
    with pytest.raises(UsageError, match="not a directory"):
        run(tmp_path / "missing", tmp_path / "out", window=(5, 5))
    (tmp_path / "flat").mkdir()
    with pytest.raises(UsageError, match="no scene folders"):
        run(tmp_path / "flat", tmp_path / "out", window=(5, 5))
    make_frames(tmp_path / "all", n=6)
    with pytest.raises(UsageError, match="inside --frames"):
        run(tmp_path / "all", tmp_path / "all" / "out", window=(3, 3))
    with pytest.raises(DataError, match="enough frames"):
        run(tmp_path / "all", tmp_path / "out", window=(7, 7))
    assert not (tmp_path / "out").exists()
    odd = tmp_path / "all" / "train" / "GOPR0372_07_00" / "000004.png"
    cv2.imwrite(str(odd), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(DataError, match="000004.png: frame is 10x10"):
        run(tmp_path / "all", tmp_path / "out", window=(3, 3))
    odd.write_text("not a png")
    with pytest.raises(DataError, match="000004.png: cannot decode"):
        run(tmp_path / "all", tmp_path / "out", window=(3, 3))
    assert not (tmp_path / "out").exists()


def test_cli(tmp_path):
    make_frames(tmp_path / "all", n=9)
    runner = CliRunner()
    args = ["synthesize", "--frames", str(tmp_path / "all"), "--out", str(tmp_path / "out"), "--window", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").rglob("sharp/*.png"))) == 3
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "not empty" in result.output
    result = runner.invoke(app, [*args[:-1], "9..3"])
    assert result.exit_code == 2 and "--window '9..3'" in result.output and "Traceback" not in result.output
