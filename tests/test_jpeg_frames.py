"""JPEG frames through organize, shard and evaluate: paired by frame name with PNGs or JPEGs, linked under their
own suffix (never transcoded), sized from their header, decoded as stored (EXIF orientation ignored)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from shard_helpers import IN_PROCESS, read_dataset, read_rejected, shard_cfg
from typer.testing import CliRunner

from pipeline import shard
from pipeline.cli import app
from pipeline.config import OrganizeConfig
from pipeline.errors import DataError
from pipeline.organize import plan, run, verify_plan
from pipeline.records import decode_image
from pipeline.sample import write_sample

STORED = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def exif_rotate_90() -> bytes:
    """An APP1 EXIF segment with Orientation = 6: viewers (and cv2.imread by default) turn the image 90 degrees."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
    body = b"Exif\x00\x00MM\x00\x2a" + struct.pack(">I", 8) + ifd + bytes(20000)
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def to_jpeg(png: Path, suffix: str, progressive: bool = False, rotated: bool = False) -> Path:
    """Replace a PNG frame by a JPEG of it (cv2-written; optionally progressive, or tagged "rotate 90")."""
    ok, data = cv2.imencode(".jpg", cv2.imread(str(png)), [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    jpg = png.with_suffix(suffix)
    raw = data.tobytes()
    jpg.write_bytes(raw[:2] + exif_rotate_90() + raw[2:] if rotated else raw)
    png.unlink()
    return jpg


@pytest.fixture(scope="module")
def jpeg_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 scenes x 3 frames of 48x32: scene 1 all .jpg; scene 2 progressive .jpeg blur with .png sharp; scene 3
    .JPG frames tagged "rotate 90"; the test scene stays PNG."""
    raw = tmp_path_factory.mktemp("jpeg") / "GOPRO_Large"
    write_sample(raw, scenes=4, frames=3, size=(48, 32), seed=5)
    s1, s2, s3 = sorted((raw / "train").iterdir())
    for png in sorted(s1.glob("*/*.png")):
        to_jpeg(png, ".jpg")
    for png in sorted(s2.glob("blur_gamma/*.png")):
        to_jpeg(png, ".jpeg", progressive=True)
    for png in sorted(s3.glob("*/*.png")):
        to_jpeg(png, ".JPG", rotated=True)
    return raw


@pytest.fixture(scope="module")
def organized(jpeg_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jpeg-organized") / "organized"
    run(OrganizeConfig(raw=str(jpeg_raw), out=str(out), blur="blur_gamma", link="hardlink"))
    return out


def rows_of(organized: Path) -> list[dict]:
    return [json.loads(line) for line in (organized / "manifest.jsonl").read_text().splitlines()]


def test_jpeg_frames_are_paired_and_linked_under_their_own_suffix(jpeg_raw: Path, organized: Path) -> None:
    rows = rows_of(organized)
    assert len(rows) == 12 and (organized / "rejected.jsonl").read_text() == ""
    s1, s2, s3 = sorted(p.name for p in (jpeg_raw / "train").iterdir())
    suffixes = {(r["scene"], os.path.splitext(r["a"])[1], os.path.splitext(r["b"])[1]) for r in rows}
    assert suffixes == {(s1, ".jpg", ".jpg"), (s2, ".jpeg", ".png"), (s3, ".JPG", ".JPG"),
                        (rows[0]["scene"], ".png", ".png")}  # fmt: skip
    for row in rows:
        assert (row["width"], row["height"]) == (
            48,
            32,
        )  # the stored size, whatever the EXIF orientation says
        assert row["a"] == f"{row['split']}/A/{row['scene']}_{row['frame']}{os.path.splitext(row['a'])[1]}"
        for key, folder in (("a", "blur_gamma"), ("b", "sharp")):
            name = f"{row['frame']}{os.path.splitext(row[key])[1]}"
            src = jpeg_raw / row["split"] / row["scene"] / folder / name
            assert (organized / row[key]).stat().st_ino == src.stat().st_ino  # a link, not a transcode
    p = verify_plan(plan(jpeg_raw, "blur_gamma"), workers=1)  # every JPEG decodes to its header's size
    assert len(p.pairs) == 12 and p.rejects == []


def test_shard_and_evaluate_read_jpeg_frames_as_stored(organized: Path, tmp_path: Path) -> None:
    """cv2.imread turns a frame tagged "rotate 90" on its side (32x48): shard would reject it as size_mismatch
    and evaluate refuse it. Both decode the stored pixels, as the header and the manifest say."""
    from train.evaluation.evaluate import load_pair

    out = tmp_path / "shards"
    meta = shard.run(shard_cfg(organized, out, encoding="raw"), beam_args=IN_PROCESS)
    assert read_rejected(out) == []
    _, records = read_dataset(out)
    rows = {(r["scene"], r["frame"]): r for r in rows_of(organized)}
    assert sum(len(r) for r in records.values()) == 36 == sum(v["examples"] for v in meta["splits"].values())
    for recs in records.values():
        for rec in recs:
            row = rows[(rec.scene, rec.frame)]
            window = (slice(rec.y, rec.y + 32), slice(rec.x, rec.x + 32))
            for data, key in ((rec.blur, "a"), (rec.sharp, "b")):
                stored = cv2.imread(str(organized / row[key]), STORED)[:, :, ::-1]
                assert np.array_equal(decode_image(data, "raw", 32, 32), stored[window])
    for row in rows.values():
        blur, sharp = load_pair(str(organized), row)
        assert blur.shape == sharp.shape == (32, 48, 3)


def test_a_frame_stored_as_png_and_jpeg_is_rejected_not_picked(jpeg_raw: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(jpeg_raw, raw)
    scene = next((raw / "test").iterdir())
    to_jpeg(shutil.copy(scene / "sharp" / "000002.png", scene / "sharp" / "copy.png"), ".jpg").rename(
        scene / "sharp" / "000002.jpg"
    )
    p = plan(raw, "blur_gamma")
    assert [(r.path, r.reason, r.detail) for r in p.rejects] == [
        (str(scene / "sharp" / "000002.jpg"), "unreadable",
         "ambiguous: 000002.jpg and 000002.png are both frame 000002 in sharp/; keep one"),
    ]  # fmt: skip
    assert len(p.pairs) == 11 and (scene.name, "000002") not in {(q.scene, q.frame) for q in p.pairs}


def test_a_source_turned_jpeg_replaces_its_png_output(jpeg_raw: Path, tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "organized"
    shutil.copytree(jpeg_raw, raw)
    run(OrganizeConfig(raw=str(raw), out=str(out), link="copy"))
    scene = next((raw / "test").iterdir())
    old = out / "test" / "A" / f"{scene.name}_000001.png"
    assert old.is_file()
    to_jpeg(scene / "blur_gamma" / "000001.png", ".jpg")
    stats = run(OrganizeConfig(raw=str(raw), out=str(out), link="copy"))
    assert (stats.written, stats.removed) == (1, 1)
    assert (
        not old.exists()
        and old.with_suffix(".jpg").read_bytes() == (scene / "blur_gamma" / "000001.jpg").read_bytes()
    )
    assert {r["a"] for r in rows_of(out)} >= {f"test/A/{scene.name}_000001.jpg"}


def test_nothing_pairs_names_what_was_found_and_what_was_asked(jpeg_raw: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(jpeg_raw, raw)
    for folder in raw.glob("*/*/blur_gamma"):
        shutil.rmtree(folder)
    with pytest.raises(DataError) as info:
        run(OrganizeConfig(raw=str(raw), out=str(tmp_path / "out"), blur="blur_gamma"))
    assert str(info.value) == (
        f"--raw {raw}: no good pairs to organize: 4 scenes, 24 files (blur/ 6 .jpg + 6 .png, "
        "sharp/ 6 .jpg + 6 .png), none under blur_gamma/ and sharp/ with matching frame names; "
        "rejected: missing_blur 12; the blurred frames are under blur/: pass --blur blur"
    )
    assert not (tmp_path / "out").exists()


def test_nothing_pairs_with_frames_of_another_format_says_which_formats_count(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_sample(raw, scenes=2, frames=2, size=(16, 16), seed=0)
    for png in raw.glob("*/*/*/*.png"):
        cv2.imwrite(str(png.with_suffix(".tif")), cv2.imread(str(png)))
        png.unlink()
    result = CliRunner().invoke(app, ["organize", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    detected, *error = result.output.strip().splitlines()
    assert detected == "layout: gopro (detected: test/GOPR0002_07_00/{blur,blur_gamma,sharp}); source: raw"
    assert " ".join(error) == (
        f"error: --raw {raw}: no good pairs to organize: 2 scenes, 12 files (blur/ 4 .tif, blur_gamma/ 4 .tif, "
        "sharp/ 4 .tif), none under blur_gamma/ and sharp/ with matching frame names; frames must be .png, .jpg "
        "or .jpeg files"
    )
