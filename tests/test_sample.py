"""`gopro-prep sample`: exact GOPRO_Large layout, the blur recipe over real sub-frames, determinism, atomicity."""

import re

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import pipeline.sample as sample_mod
from pipeline.blur import gamma_mean_frame, mean_frame
from pipeline.cli import app
from pipeline.errors import UsageError
from pipeline.sample import parse_size, render_subframes, stable_hash, write_sample

SIZE = (96, 64)


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("s") / "GOPRO_Large"
    write_sample(out, scenes=5, frames=2, size=SIZE, seed=3)
    return out


def test_parse_size():
    assert parse_size("320x180") == (320, 180)
    assert parse_size(" 64X48 ") == (64, 48)
    for bad in ("320", "x180", "320x", "0x10", "10x10", "abc", "320x180x3", "9000x100"):
        with pytest.raises(UsageError, match="--size"):
            parse_size(bad)


def test_layout_is_gopro(small):
    train = sorted(p.name for p in (small / "train").iterdir())
    test = sorted(p.name for p in (small / "test").iterdir())
    assert len(train) == 4 and len(test) == 1  # last max(1, 5 // 4) = 1 scene is test
    assert test == [f"GOPR0005_{test[0][9:11]}_00"]
    for name in train + test:
        match = re.fullmatch(r"GOPR(\d{4})_(\d{2})_00", name)
        assert match and 7 <= int(match.group(2)) <= 13
    for scene in (small / "train").iterdir():
        for folder in ("blur", "blur_gamma", "sharp"):
            assert sorted(p.name for p in (scene / folder).iterdir()) == ["000001.png", "000002.png"]
            image = cv2.imread(str(scene / folder / "000002.png"), cv2.IMREAD_UNCHANGED)
            assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
    assert not [p for p in small.parent.iterdir() if p.name.startswith(".")]  # no temp dir left behind


def test_images_follow_the_recipe(small):
    """Re-render scene 0's sub-frames: blur is their mean, blur_gamma the linear mean, sharp the middle one."""
    rng = np.random.default_rng([3, stable_hash("sample-scene-0")])
    window = int(rng.integers(7, 14))
    scene = small / "train" / f"GOPR0001_{window:02d}_00"
    subframes = np.stack(list(render_subframes(SIZE, 2 * window, rng)))
    for f in range(2):
        window_frames = subframes[f * window : (f + 1) * window]

        def read(folder, f=f):
            return cv2.imread(str(scene / folder / f"{f + 1:06d}.png"), cv2.IMREAD_UNCHANGED)

        np.testing.assert_array_equal(read("blur"), mean_frame(window_frames))
        np.testing.assert_array_equal(read("blur_gamma"), gamma_mean_frame(window_frames, 2.2))
        np.testing.assert_array_equal(read("sharp"), window_frames[window // 2])


def test_blur_is_visible_but_not_absurd(small):
    for scene in sorted((small / "train").iterdir()):
        sharp = cv2.imread(str(scene / "sharp" / "000001.png"), cv2.IMREAD_GRAYSCALE).astype(np.float64)
        blur = cv2.imread(str(scene / "blur_gamma" / "000001.png"), cv2.IMREAD_GRAYSCALE).astype(np.float64)
        diff = np.abs(sharp - blur).mean()
        energy = cv2.Laplacian(blur, cv2.CV_64F).var() / cv2.Laplacian(sharp, cv2.CV_64F).var()
        assert 2.0 < diff < 40.0, scene.name
        assert 0.02 < energy < 0.8, scene.name  # sharp edges smeared, but the image is still there
        assert sharp.std() > 8  # textured, not flat


def test_deterministic_for_a_seed(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        write_sample(tmp_path / name, scenes=2, frames=1, size=(32, 24), seed=seed)
    files = tree(tmp_path / "a")
    assert files == tree(tmp_path / "b")
    same = [
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
        for f in files
        if f.endswith(".png")
    ]
    assert all(same) and len(same) == 6
    a = cv2.imread(str(next((tmp_path / "a").rglob("sharp/000001.png"))))
    c = cv2.imread(str(next((tmp_path / "c").rglob("sharp/000001.png"))))
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_refuses_non_empty_out_and_accepts_empty(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        write_sample(tmp_path / "full", scenes=2, frames=1, size=(32, 24), seed=0)
    assert tree(tmp_path / "full") == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    write_sample(tmp_path / "empty", scenes=2, frames=1, size=(32, 24), seed=0)
    assert (tmp_path / "empty" / "test").is_dir()
    with pytest.raises(UsageError, match="scenes"):
        write_sample(tmp_path / "one", scenes=1, frames=1, size=(32, 24), seed=0)


def test_failure_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = []

    def failing_write(*args):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*args)

    real = sample_mod.write_triple
    monkeypatch.setattr(sample_mod, "write_triple", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_sample(tmp_path / "out", scenes=2, frames=2, size=(32, 24), seed=0)
    assert list(tmp_path.iterdir()) == []  # neither OUT nor the temp tree


def test_cli(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app, ["sample", "--out", str(tmp_path / "s"), "--scenes", "2", "--frames", "1", "--size", "40x30"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "s").rglob("*.png"))) == 6
    result = runner.invoke(app, ["sample", "--out", str(tmp_path / "s"), "--size", "40x30"])
    assert result.exit_code == 2 and "not empty" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["sample", "--out", str(tmp_path / "t"), "--size", "big"])
    assert result.exit_code == 2 and "--size 'big'" in result.output
    assert not (tmp_path / "t").exists()
