"""A PNG whose data fails its CRC: our one reject/skip line, and none of libpng's own `libpng error:` lines on the
process's stderr (file descriptor 2, where the C library writes), for organize --verify, shard's decoder and
deblur; other output written meanwhile still arrives."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from pipeline import fsio
from pipeline.cli import app as prep_app
from pipeline.native_stderr import libpng_quieted
from pipeline.sample import write_sample

runner = CliRunner()


def crc_broken(path: Path) -> Path:
    """Flip a byte inside the first IDAT chunk: the header still reads fine, the pixel data fails its CRC."""
    data = bytearray(path.read_bytes())
    data[data.index(b"IDAT") + 8] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_libpng_error_lines_are_dropped_and_other_output_kept(tmp_path: Path, capfd) -> None:
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8))
    crc_broken(png)
    with libpng_quieted():
        assert cv2.imread(str(png)) is None
        os.write(2, b"a line of someone else's\n")
        print("python's own stderr", file=sys.stderr)
    err = capfd.readouterr().err
    assert "libpng" not in err
    assert "a line of someone else's\n" in err and "python's own stderr\n" in err
    assert fsio.read_image(str(png)) is None  # what shard's pair decoder calls: None, quietly
    assert "libpng" not in capfd.readouterr().err


def test_organize_verify_prints_the_reject_line_only(tmp_path: Path, capfd) -> None:
    raw = tmp_path / "raw"
    write_sample(raw, scenes=2, frames=3, size=(48, 32), seed=2)
    crc_broken(next(raw.glob("train/*/sharp/000002.png")))
    result = runner.invoke(
        prep_app, ["organize", "--raw", str(raw), "--out", str(tmp_path / "o"), "--verify"]
    )
    assert result.exit_code == 0, result.output
    assert "rejected 1: unreadable 1" in result.output
    assert "libpng" not in capfd.readouterr().err


def test_deblur_skips_the_file_with_one_line(tmp_path: Path, capfd) -> None:
    from test_deblurrer import smooth_image
    from tiny_generators import identity_generator, save_version

    from train.cli import app as train_app

    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "good.png"), smooth_image(24, 32, seed=1))
    shutil.copy(src / "good.png", src / "bad.png")
    crc_broken(src / "bad.png")
    version = save_version(tmp_path / "run", identity_generator())
    result = runner.invoke(
        train_app, ["deblur", "--model", str(version), str(src), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert f"skipped: {src / 'bad.png'}: cannot decode image" in result.output
    assert "libpng" not in capfd.readouterr().err
