"""`trainctl deblur`: any size in, same size out; tiling matches the whole-image output; bad files skipped."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_generators import identity_generator, local_generator, random_deblurgan, save_version
from typer.testing import CliRunner

from pipeline.errors import UsageError
from train import deblur
from train.cli import app
from train.samples import GAP

runner = CliRunner()


def _write(path: Path, rgb: np.ndarray, params: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params or [])
    return path


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth, textured RGB image (random noise upsampled), like a photo rather than white noise."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def identity_dir(tmp_path_factory) -> Path:
    return save_version(tmp_path_factory.mktemp("run_identity"), identity_generator())


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory) -> Path:
    return save_version(tmp_path_factory.mktemp("run_local"), local_generator(seed=1))


def test_pad_to_stride_reflects_like_numpy() -> None:
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    padded = deblur.pad_to_stride(img, 4, min_side=0)
    assert padded.shape == (8, 8, 3)
    np.testing.assert_array_equal(padded, np.pad(img, ((0, 3), (0, 1), (0, 0)), mode="reflect"))
    assert deblur.pad_to_stride(img, 4, min_side=32).shape == (32, 32, 3)
    np.testing.assert_array_equal(
        deblur.pad_to_stride(img[:1, :1], 4, min_side=0), np.repeat(np.repeat(img[:1, :1], 4, 0), 4, 1)
    )
    fits = np.zeros((32, 64, 3), np.uint8)
    assert deblur.pad_to_stride(fits, 4) is fits


def test_tile_starts_cover_every_pixel_on_stride() -> None:
    for length in (1100, 700, 257 * 4, 2160, 3840):
        starts = deblur.tile_starts(length, 256, 32, 4)
        assert starts[0] == 0 and starts[-1] == length - 256
        assert all(s % 4 == 0 for s in starts) and starts == sorted(set(starts))
        assert all(b - a <= 256 - 32 for a, b in zip(starts, starts[1:], strict=False))
    assert deblur.tile_starts(200, 256, 32, 4) == [0]
    assert deblur.tile_starts(1100, 256, 32, 4) == [0, 224, 448, 672, 844]


def test_blend_ramp_margin_and_complementary_weights() -> None:
    w = deblur.blend_ramp(64, True, True, 32)
    assert w[:8].max() == 0 and w[-8:].max() == 0  # margin: a quarter of the overlap
    assert w[24:40].min() == 1.0
    np.testing.assert_allclose(w[8:24], (np.arange(16) + 0.5) / 16)
    # Two tiles overlapping by exactly `overlap` sum to 1 across the seam.
    right, left = deblur.blend_ramp(64, False, True, 32), deblur.blend_ramp(64, True, False, 32)
    np.testing.assert_allclose(right[32:] + left[:32], 1.0)
    np.testing.assert_array_equal(deblur.blend_ramp(10, False, False, 32), np.ones(10))


@pytest.mark.parametrize(("h", "w"), [(64, 64), (333, 517), (1, 1), (7, 30)])
def test_identity_model_returns_the_input_at_any_size(h: int, w: int) -> None:
    predict = deblur.make_predict(identity_generator())
    img = _image(h, w, seed=h * w)
    out = deblur.deblur_image(predict, img, stride=4)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(deblur.deblur_image(predict, img, stride=4, tile=64), img)


def test_tiled_1100x700_matches_untiled() -> None:
    predict = deblur.make_predict(local_generator(seed=1))
    img = _image(700, 1100, seed=7)
    whole = deblur.deblur_image(predict, img, stride=4, tile=2048)
    tiled = deblur.deblur_image(predict, img, stride=4, tile=256)
    assert whole.shape == tiled.shape == img.shape
    assert not np.array_equal(whole, img)  # the model really changes the image
    diff = np.abs(whole.astype(np.int16) - tiled.astype(np.int16))
    # The receptive field (radius 2) lies inside the blend margin (8 px), so tiles agree up to float rounding.
    assert diff.max() <= 1 and diff.mean() < 1e-3
    # Away from the seams a single tile's output is used as is.
    seams_x = {s for s in deblur.tile_starts(1100, 256, 32, 4)[1:]} | {
        s + 256 for s in deblur.tile_starts(1100, 256, 32, 4)[:-1]
    }
    far = np.ones(1100, bool)
    for s in seams_x:
        far[max(0, s - 40) : s + 40] = False
    assert diff[:, far].max() <= 1


def _seam_generator():
    """The project's DeblurGAN generator (8 filters, 2 blocks, initial weights) with a random tail conv whose
    7x7 kernels are Gaussian-weighted (sigma 1.5): it changes a photo by about 40 grey levels, with a smooth
    enough residual that a discontinuity stands out, and it sees 28 px around each pixel (plus instance norm
    over the whole input), so a tile's output is off near its border, where a cut or blend must not show."""
    import keras

    from train.models import build_generator

    keras.utils.set_random_seed(4)
    model = build_generator(filters=8, blocks=2, dropout=0.0)
    tail = model.get_layer("tail_conv")
    kernel, bias = tail.get_weights()
    k = np.arange(7) - 3
    window = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / (2 * 1.5**2))
    mixing = np.random.default_rng(4).normal(0, 0.4, kernel.shape[2:])
    tail.set_weights([(window[:, :, None, None] / window.sum() * mixing).astype(np.float32), bias])
    return model


def _hard_cut(predict: deblur.Predict, img: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """What tiling without blending gives: the same tiles as `deblur_image`, each pixel taken whole from one
    tile, cut in the middle of every overlap."""
    starts = deblur.tile_starts(img.shape[0], tile, overlap, 4)
    assert img.shape[0] == img.shape[1] and img.shape[0] % 4 == 0
    bounds = [0, *((a + tile + b) // 2 for a, b in zip(starts, starts[1:], strict=False)), img.shape[0]]
    out = np.zeros(img.shape, np.float32)
    for i, y0 in enumerate(starts):
        for j, x0 in enumerate(starts):
            part = predict(img[None, y0 : y0 + tile, x0 : x0 + tile])[0]
            ys, xs = slice(bounds[i], bounds[i + 1]), slice(bounds[j], bounds[j + 1])
            out[ys, xs] = part[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return deblur.to_uint8(out)


def _seam_strength(out: np.ndarray, whole: np.ndarray, starts: list[int], tile: int) -> tuple[float, float]:
    """How much `out` - `whole` jumps between neighbouring columns (rows), averaged along the column (row): the
    largest such jump inside a tile overlap, and the largest elsewhere. A seam is a line of jumps."""
    err = out.astype(np.float32) - whole.astype(np.float32)
    jumps = [np.abs(np.diff(err, axis=1)).mean(axis=(0, 2)), np.abs(np.diff(err, axis=0)).mean(axis=(1, 2))]
    overlap = np.zeros(len(jumps[0]), bool)  # boundary k lies between pixels k and k + 1
    for a, b in zip(starts, starts[1:], strict=False):
        overlap[b : a + tile - 1] = True
    inside = max(float(j[overlap].max()) for j in jumps)
    return inside, max(float(j[~overlap].max()) for j in jumps)


def test_tiles_of_a_real_generator_blend_without_a_seam() -> None:
    """480x480 photo-like image in 256 px tiles (default overlap 32: a 2x2 grid overlapping 32 px) vs the whole
    image at once, with a DeblurGAN generator that sees well past the overlap. Per-tile instance norm makes each
    tile differ from the whole-image output a little everywhere (issue 13): mean jumps of 1.7 grey levels between
    neighbouring columns (rows) away from the overlaps. Measured inside the overlaps: 2.0 blended (1.2x that),
    8.8 when cut hard in the middle of the overlap (5.2x: there the model still sees the tile border). The
    threshold, 2x the jumps elsewhere, is checked to catch that cut."""
    predict = deblur.make_predict(_seam_generator())
    img = _image(480, 480, seed=5)
    whole = deblur.deblur_image(predict, img, stride=4, tile=2048)
    assert np.abs(whole.astype(np.int16) - img).mean() > 20  # the model really changes the image
    tiled = deblur.deblur_image(predict, img, stride=4, tile=256)
    starts = deblur.tile_starts(480, 256, 32, 4)
    assert starts == [0, 224] and deblur.default_overlap(256, 4) == 32
    blended, away = _seam_strength(tiled, whole, starts, 256)
    cut, cut_away = _seam_strength(_hard_cut(predict, img, 256, 32), whole, starts, 256)
    assert blended <= 2 * away, (blended, away)
    assert cut > 2 * cut_away, (cut, cut_away)  # the threshold does catch a seam


def test_cli_sizes_jpeg_and_names(tmp_path: Path, local_dir: Path) -> None:
    src = tmp_path / "in"
    images = {"small": _image(64, 64, 1), "odd": _image(333, 517, 2), "big": _image(700, 1100, 3)}
    for name, img in images.items():
        _write(src / f"{name}.png", img)
    _write(src / "photo.jpg", _image(90, 120, 4), [cv2.IMWRITE_JPEG_QUALITY, 90])
    (src / "notes.txt").write_text("not an image")  # not a PNG/JPEG: ignored in folders
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["deblur", "--model", str(local_dir), str(src), "--out", str(out), "--tile", "256"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["big.png", "odd.png", "photo.png", "small.png"]
    for name, img in images.items():
        assert _read(out / f"{name}.png").shape == img.shape
    # The files hold exactly what the library computes (the tiled frame included).
    predict = deblur.make_predict(local_generator(seed=1))
    np.testing.assert_array_equal(_read(out / "odd.png"), deblur.deblur_image(predict, images["odd"], 4))
    jpeg = deblur.read_rgb(src / "photo.jpg")
    np.testing.assert_array_equal(_read(out / "photo.png"), deblur.deblur_image(predict, jpeg, 4))
    big = deblur.deblur_image(predict, images["big"], 4, tile=256)
    np.testing.assert_array_equal(_read(out / "big.png"), big)


def test_corrupt_file_in_folder_is_skipped_with_message(tmp_path: Path, identity_dir: Path) -> None:
    src = tmp_path / "in"
    good = _write(src / "a_good.png", _image(48, 64, 5))
    (src / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (src / "c_empty.jpg").write_bytes(b"")
    _write(src / "d_good.jpeg", _image(40, 40, 6))
    out = tmp_path / "out"
    result = runner.invoke(app, ["deblur", "--model", str(identity_dir), str(src), "--out", str(out)])
    assert result.exit_code == 1
    assert f"{src / 'b_corrupt.png'}: cannot decode image" in result.output
    assert f"{src / 'c_empty.jpg'}: cannot decode image" in result.output
    assert "deblurred 2 of 4 images" in result.output and "2 failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a_good.png", "d_good.png"]
    np.testing.assert_array_equal(_read(out / "a_good.png"), _read(good))


def test_refuses_to_overwrite_inputs(tmp_path: Path, identity_dir: Path) -> None:
    src = tmp_path / "in"
    img = _image(48, 64, 8)
    path = _write(src / "frame.png", img)
    before = path.read_bytes()
    result = runner.invoke(app, ["deblur", "--model", str(identity_dir), str(src), "--out", str(src)])
    assert result.exit_code == 2 and "refusing to overwrite an input" in result.output
    assert path.read_bytes() == before
    # A hard link to the input in the output folder is the same data: refused too.
    out = tmp_path / "out"
    out.mkdir()
    (out / "frame.png").hardlink_to(path)
    result = runner.invoke(app, ["deblur", "--model", str(identity_dir), str(path), "--out", str(out)])
    assert result.exit_code == 2 and path.read_bytes() == before


def test_plan_rejects_name_clash_and_missing_input(tmp_path: Path) -> None:
    a = _write(tmp_path / "x" / "frame.png", _image(16, 16, 9))
    b = _write(tmp_path / "y" / "frame.jpg", _image(16, 16, 9))
    with pytest.raises(UsageError, match="would both be written"):
        deblur.plan_outputs([a, b], tmp_path / "out")
    with pytest.raises(UsageError, match="no such file or folder"):
        deblur.collect_inputs([tmp_path / "missing.png"])
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(
        app, ["deblur", "--model", str(tmp_path), str(empty), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "nothing to deblur" in result.output


def test_sample_grid_blur_deblurred_sharp() -> None:
    blur, sharp = _image(40, 56, 10), _image(40, 56, 11)
    grid = deblur.sample_grid(identity_generator(), blur, sharp)
    gap = GAP
    assert grid.shape == (40, 3 * 56 + 2 * gap, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[:, :56], blur)
    np.testing.assert_array_equal(grid[:, 56 + gap : 112 + gap], blur)  # identity: deblurred == blur
    np.testing.assert_array_equal(grid[:, 112 + 2 * gap :], sharp)
    assert (grid[:, 56 : 56 + gap] == 255).all()
    batch = deblur.sample_grid(identity_generator(), np.stack([blur, blur]), np.stack([sharp, sharp]))
    assert batch.shape == (2 * 40 + gap, 3 * 56 + 2 * gap, 3)


def test_real_generator_any_size_through_a_version(tmp_path: Path) -> None:
    """The project's DeblurGAN generator (tiny, random weights) survives save/load: an odd size keeps its shape,
    and the file holds what the model in memory computes (tiled in 64 px tiles)."""
    model = random_deblurgan(filters=4, blocks=1, seed=1)
    version = save_version(tmp_path, model)
    img = _image(83, 117, 12)
    src = _write(tmp_path / "in" / "odd.png", img)
    out = tmp_path / "out"
    assert deblur.run(version, [src], out, tile=64) == 0
    want = deblur.deblur_image(deblur.make_predict(model), img, 4, tile=64)
    assert np.abs(want.astype(np.int16) - img).mean() > 5  # the model really changes the image
    got = _read(out / "odd.png")
    assert got.shape == (83, 117, 3)
    np.testing.assert_array_equal(got, want)
