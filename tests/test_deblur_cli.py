"""`trainctl deblur`: files and folders of every format, the same pixels as the Python API, gray / RGBA / 16-bit
kept, bad files skipped, inputs never overwritten."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_deblurrer import smooth_image
from tiny_generators import identity_generator, local_generator, save_version
from typer.testing import CliRunner

from pipeline.errors import UsageError
from train.cli import app
from train.inference import files, images
from train.inference.deblurrer import Deblurrer

runner = CliRunner()


def _write(path: Path, image: np.ndarray, params: list[int] | None = None) -> Path:
    """Write an RGB(A) or gray image with OpenCV (BGR order on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        code = cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        image = cv2.cvtColor(image, code)
    assert cv2.imwrite(str(path), image, params or [])
    return path


@pytest.fixture(scope="module")
def identity_dir(tmp_path_factory) -> Path:
    return save_version(tmp_path_factory.mktemp("run_identity"), identity_generator())


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory) -> Path:
    return save_version(tmp_path_factory.mktemp("run_local"), local_generator(seed=1))


def test_every_format_named_or_in_a_folder_matches_the_python_api(tmp_path: Path, local_dir: Path) -> None:
    src = tmp_path / "in"
    rgb = {name: smooth_image(48 + i * 8, 64 + i * 4, seed=i) for i, name in enumerate("abcde")}
    _write(src / "a.png", rgb["a"])
    _write(src / "b.jpg", rgb["b"], [cv2.IMWRITE_JPEG_QUALITY, 95])
    _write(src / "c.tif", rgb["c"])
    _write(src / "d.webp", rgb["d"], [cv2.IMWRITE_WEBP_QUALITY, 100])
    _write(src / "e.bmp", rgb["e"])
    (src / "notes.txt").write_text("not an image")
    (src / ".hidden.png").write_bytes(b"")
    named = _write(tmp_path / "single.tiff", smooth_image(40, 40, seed=9))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["deblur", "--model", str(local_dir), str(src), str(named), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "a.png",
        "b.png",
        "c.png",
        "d.png",
        "e.png",
        "single.png",
    ]
    assert (
        "deblurred 6 of 6 inputs" in result.output and "1 other files in the folders skipped" in result.output
    )
    d = Deblurrer(str(local_dir))
    for name in ("a", "c", "e"):  # lossless formats: the input pixels are known exactly
        np.testing.assert_array_equal(images.read(out / f"{name}.png"), d(rgb[name]))
    for path in (src / "b.jpg", src / "d.webp"):  # lossy: compare with what the decoder gives
        np.testing.assert_array_equal(images.read(out / f"{path.stem}.png"), d(images.read(path)))


def test_gray_rgba_and_16_bit_files_keep_their_layout(tmp_path: Path, local_dir: Path) -> None:
    src = tmp_path / "in"
    gray = smooth_image(40, 48, seed=1)[:, :, 0]
    rgba = np.dstack([smooth_image(40, 48, seed=2), np.arange(40 * 48, dtype=np.uint8).reshape(40, 48)])
    deep = smooth_image(40, 48, seed=3, dtype=np.uint16)
    _write(src / "gray.png", gray)
    _write(src / "alpha.png", rgba)
    _write(src / "deep.tif", deep)
    out = tmp_path / "out"
    result = runner.invoke(app, ["deblur", "--model", str(local_dir), str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    d = Deblurrer(str(local_dir))
    got_gray, got_rgba, got_deep = (images.read(out / f"{n}.png") for n in ("gray", "alpha", "deep"))
    assert got_gray.shape == (40, 48) and got_gray.dtype == np.uint8
    np.testing.assert_array_equal(got_gray, d(gray))
    np.testing.assert_array_equal(got_rgba[:, :, 3], rgba[:, :, 3])
    np.testing.assert_array_equal(got_rgba, d(rgba))
    assert got_deep.dtype == np.uint16
    np.testing.assert_array_equal(got_deep, d(deep))
    # One line per file says what was done.
    assert "gray.png: 8-bit gray 48x40 (deblurred as RGB, written as gray (luminance))" in result.output
    assert "alpha.png: 8-bit RGBA 48x40 (alpha kept unchanged)" in result.output
    assert "deep.tif: 16-bit RGB 48x40 (processed in float, written 16-bit)" in result.output


def test_corrupt_files_are_skipped_with_a_message(tmp_path: Path, identity_dir: Path) -> None:
    src = tmp_path / "in"
    good = _write(src / "a_good.png", smooth_image(48, 64, 5))
    (src / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (src / "c_empty.jpg").write_bytes(b"")
    _write(src / "d_good.jpeg", smooth_image(40, 40, 6))
    out = tmp_path / "out"
    result = runner.invoke(app, ["deblur", "--model", str(identity_dir), str(src), "--out", str(out)])
    assert result.exit_code == 1
    assert f"{src / 'b_corrupt.png'}: cannot decode image" in result.output
    assert f"{src / 'c_empty.jpg'}: cannot decode image" in result.output
    assert "deblurred 2 of 4 inputs" in result.output and "2 failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a_good.png", "d_good.png"]
    np.testing.assert_array_equal(images.read(out / "a_good.png"), images.read(good))


def test_refuses_to_overwrite_inputs(tmp_path: Path, identity_dir: Path) -> None:
    src = tmp_path / "in"
    path = _write(src / "frame.png", smooth_image(48, 64, 8))
    before = path.read_bytes()
    result = runner.invoke(app, ["deblur", "--model", str(identity_dir), str(src), "--out", str(src)])
    assert result.exit_code == 2 and "refusing to overwrite an input" in result.output
    assert path.read_bytes() == before
    out = tmp_path / "out"  # a hard link to the input in the output folder is the same data: refused too
    out.mkdir()
    (out / "frame.png").hardlink_to(path)
    result = runner.invoke(app, ["deblur", "--model", str(identity_dir), str(path), "--out", str(out)])
    assert result.exit_code == 2 and path.read_bytes() == before


def test_plan_rejects_clashes_missing_inputs_and_unknown_files(tmp_path: Path, identity_dir: Path) -> None:
    a = _write(tmp_path / "x" / "frame.png", smooth_image(16, 16, 9))
    b = _write(tmp_path / "y" / "frame.jpg", smooth_image(16, 16, 9))
    with pytest.raises(UsageError, match="would both be written"):
        files.plan_outputs([a, b], tmp_path / "out")
    with pytest.raises(UsageError, match="no such file or folder"):
        files.collect([tmp_path / "missing.png"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match=r"notes.txt: not a supported file \(PNG, JPEG, TIFF, WebP, BMP"):
        files.collect([tmp_path / "notes.txt"])
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(
        app, ["deblur", "--model", str(identity_dir), str(empty), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "nothing to deblur" in result.output


def test_real_generator_through_a_version_at_odd_sizes(tmp_path: Path) -> None:
    """The project's DeblurGAN generator (tiny, random weights: an untrained one is the identity) through a version,
    tiled at the smallest tile its receptive field allows (26 px: 148), at an odd size; a smaller tile is refused
    with one line naming the smallest."""
    from test_deblurrer import random_weights

    from train.archs.deblurgan import ARCH, DeblurGanSettings, build

    settings = DeblurGanSettings(filters=4, blocks=1, dropout=0.0)
    model = random_weights(build(settings), seed=11)
    version = save_version(tmp_path, model, arch=ARCH.describe(settings, 64))
    src = _write(tmp_path / "in" / "odd.png", smooth_image(183, 317, 12))
    out = tmp_path / "out"
    refused = runner.invoke(
        app, ["deblur", "--model", str(version), str(src), "--out", str(out), "--tile", "144"]
    )
    assert refused.exit_code == 2 and not out.exists()
    assert refused.output.strip().splitlines()[1:] == [  # after the `model: ...` line
        "error: --tile 144: too small for a model that sees 26 px around each pixel (tiles would differ from "
        "the whole frame); the smallest is 148"
    ]
    result = runner.invoke(
        app, ["deblur", "--model", str(version), str(src), "--out", str(out), "--tile", "148"]
    )
    assert result.exit_code == 0, result.output
    got = images.read(out / "odd.png")
    assert got.shape == (183, 317, 3) and not np.array_equal(got, images.read(src))
    whole = Deblurrer(str(version))(images.read(src))
    assert np.abs(got.astype(np.int16) - whole).max() <= 1


def test_a_float_tiff_outside_0_1_is_skipped_naming_the_file_and_the_range(
    tmp_path: Path, identity_dir: Path
) -> None:
    src = tmp_path / "in"
    _write(src / "a_good.png", smooth_image(24, 32, 1))
    _write(src / "b_float.tif", smooth_image(24, 32, 2).astype(np.float32))  # 0-255 stored as floats
    out = tmp_path / "out"
    result = runner.invoke(app, ["deblur", "--model", str(identity_dir), str(src), "--out", str(out)])
    assert result.exit_code == 1
    assert f"skipped: {src / 'b_float.tif'}: float image values span [" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a_good.png"]


def test_a_jpeg_comes_out_as_its_exif_orientation_shows_it(tmp_path: Path, local_dir: Path) -> None:
    from test_exif import blocks, tagged_jpeg

    src = tagged_jpeg(tmp_path / "portrait.jpg", blocks(24, 40, seed=3), 6)  # stored landscape, shown upright
    out = tmp_path / "out"
    result = runner.invoke(app, ["deblur", "--model", str(local_dir), str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        f"portrait.jpg: 8-bit RGB 24x40 (EXIF orientation 6 applied: rotated 90° clockwise) -> {out / 'portrait.png'}"
        in result.output
    )
    shown = cv2.cvtColor(cv2.imread(str(src), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)  # what a viewer shows
    np.testing.assert_array_equal(images.read(out / "portrait.png"), Deblurrer(str(local_dir))(shown))


def test_gray_with_alpha_comes_out_as_gray_with_alpha(tmp_path: Path, local_dir: Path) -> None:
    from PIL import Image

    gray = smooth_image(24, 32, seed=4)[:, :, 0]
    alpha = np.arange(24 * 32, dtype=np.uint8).reshape(24, 32)
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(tmp_path / "ga.png")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["deblur", "--model", str(local_dir), str(tmp_path / "ga.png"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "ga.png: 8-bit gray + alpha 32x24 (deblurred as RGB, written as gray (luminance); alpha kept" in (
        result.output
    )
    with Image.open(out / "ga.png") as written:
        assert written.mode == "LA"
        pixels = np.asarray(written)
    np.testing.assert_array_equal(pixels[:, :, 1], alpha)
    np.testing.assert_array_equal(pixels, Deblurrer(str(local_dir))(np.dstack([gray, alpha])))


def test_16_bit_gray_with_alpha_is_written_as_such() -> None:
    ga = np.dstack(
        [smooth_image(8, 12, seed=5, dtype=np.uint16)[:, :, 0], np.full((8, 12), 40000, np.uint16)]
    )
    png = images.encode_png(ga)
    assert png[24:26] == bytes([16, 4])  # IHDR: bit depth 16, colour type 4 (gray + alpha)
    bgra = cv2.imdecode(
        np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED
    )  # OpenCV reads it as B=G=R + alpha
    assert bgra.dtype == np.uint16
    np.testing.assert_array_equal(bgra[:, :, [0, 3]], ga)
    np.testing.assert_array_equal(bgra[:, :, 1], ga[:, :, 0])


def test_a_subfolder_is_counted_in_the_summary(tmp_path: Path, identity_dir: Path) -> None:
    src = tmp_path / "in"
    _write(src / "a.png", smooth_image(16, 16, 1))
    _write(src / "more" / "b.png", smooth_image(16, 16, 2))
    (src / ".cache").mkdir()  # hidden: ignored like hidden files
    result = runner.invoke(
        app, ["deblur", "--model", str(identity_dir), str(src), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "deblurred 1 of 1 inputs" in result.output
    assert "; 1 subfolder not searched (name it to deblur its files)" in result.output
