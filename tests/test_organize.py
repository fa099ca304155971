"""`gopro-prep organize` on a sample tree with planted defects: exact rejects, exact outputs, RAW untouched."""

import errno
import hashlib
import json
import os
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import OrganizeConfig
from pipeline.errors import DataError, UsageError
from pipeline.organize import plan, run, verify_plan
from pipeline.sample import write_sample

runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    raw = tmp_path_factory.mktemp("pristine") / "GOPRO_Large"
    write_sample(raw, scenes=4, frames=3, size=(48, 32), seed=5)
    return raw


def scenes_of(raw):
    return sorted((raw / "train").iterdir()) + sorted((raw / "test").iterdir())


@pytest.fixture
def raw(pristine, tmp_path):
    """A fresh copy of the sample with planted defects; returns (raw, expected rejects without --verify)."""
    raw = tmp_path / "GOPRO_Large"
    shutil.copytree(pristine, raw)
    s1, s2, s3, s4 = scenes_of(raw)
    (s1 / "sharp" / "000002.png").unlink()  # missing twin
    (s2 / "blur_gamma" / "000003.png").unlink()  # missing twin (the chosen blur source)
    cv2.imwrite(str(s3 / "sharp" / "000001.png"), np.zeros((16, 24, 3), np.uint8))  # size mismatch
    (s4 / "blur_gamma" / "000001.png").write_text("I am a text file named .png\n")
    truncated = s1 / "blur_gamma" / "000003.png"  # only --verify can tell
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    for junk in (
        s1 / ".DS_Store",
        s2 / "sharp" / "Thumbs.db",
        s3 / "blur" / "notes.txt",
        raw / "train" / "x.txt",
    ):
        junk.write_bytes(b"junk")
    (s2 / "sharp" / "._000001.png").write_bytes(b"AppleDouble junk")
    (raw / "train" / "GOPR0099_07_00").mkdir()  # empty scene
    (raw / "train" / "GOPR0098_07_00" / "sharp").mkdir(parents=True)  # scene with an empty folder
    expected = {
        (f"{s1}/blur_gamma/000002.png", "missing_sharp"),
        (f"{s2}/sharp/000003.png", "missing_blur"),
        (f"{s3}/blur_gamma/000001.png", "size_mismatch"),
        (f"{s4}/blur_gamma/000001.png", "unreadable"),
    }
    return raw, expected, truncated


def snapshot(root):
    """Every path under root with its bytes' hash and mtime: RAW must come out byte-identical."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            state[os.path.join(dirpath, name)] = "dir"
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                state[path] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return state


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def organize(raw, out, *flags):
    return runner.invoke(app, ["organize", "--raw", str(raw), "--out", str(out), *flags])


def test_plan_rejects_exactly_the_planted_defects(raw):
    raw, expected, truncated = raw
    p = plan(raw, "blur_gamma")
    assert {(r.path, r.reason) for r in p.rejects} == expected
    assert len(p.pairs) == 12 - 4
    assert str(truncated) in {pair.a for pair in p.pairs}  # the header is fine
    keys = [(pair.split, pair.scene, pair.frame) for pair in p.pairs]
    assert keys == sorted(keys)
    details = {r.reason: r.detail for r in p.rejects}
    assert details["size_mismatch"] == "blur_gamma 48x32 vs sharp 24x16"
    assert "signature" in details["unreadable"]


@pytest.mark.parametrize("link", ["hardlink", "symlink", "copy"])
def test_organize_links_every_good_pair(raw, tmp_path, link):
    raw, expected, _ = raw
    before = snapshot(raw)
    out = tmp_path / "organized"
    result = organize(raw, out, "--link", link)
    assert result.exit_code == 0, result.output
    assert "organized 6 train + 2 test pairs" in result.output
    assert "rejected 4: missing_blur 1, missing_sharp 1, size_mismatch 1, unreadable 1" in result.output
    rows = read_jsonl(out / "manifest.jsonl")
    assert len(rows) == 8
    assert [(r["split"], r["scene"], r["frame"]) for r in rows] == sorted(
        (r["split"], r["scene"], r["frame"]) for r in rows
    )
    for row in rows:
        assert set(row) == {"split", "scene", "frame", "a", "b", "width", "height", "blur", "source"}
        assert row["a"] == f"{row['split']}/A/{row['scene']}_{row['frame']}.png"
        assert (row["width"], row["height"], row["blur"], row["source"]) == (
            48,
            32,
            "blur_gamma",
            "GOPRO_Large",
        )
        for key, folder in (("a", "blur_gamma"), ("b", "sharp")):
            src = raw / row["split"] / row["scene"] / folder / f"{row['frame']}.png"
            dst = out / row[key]
            assert dst.read_bytes() == src.read_bytes()
            np.testing.assert_array_equal(cv2.imread(str(dst)), cv2.imread(str(src)))
            if link == "hardlink":
                assert dst.stat().st_ino == src.stat().st_ino
            elif link == "symlink":
                assert dst.is_symlink() and os.readlink(dst) == str(src.absolute())
            else:
                assert not dst.is_symlink() and dst.stat().st_ino != src.stat().st_ino
    on_disk = sorted(str(p.relative_to(out)) for p in out.glob("*/*/*.png"))
    assert on_disk == sorted([r["a"] for r in rows] + [r["b"] for r in rows])
    rejects = read_jsonl(out / "rejected.jsonl")
    assert {(r["path"], r["reason"]) for r in rejects} == expected
    assert all(set(r) == {"path", "reason", "detail", "split", "source"} and r["detail"] for r in rejects)
    assert {(r["split"], r["source"]) for r in rejects} == {("train", "GOPRO_Large"), ("test", "GOPRO_Large")}
    assert snapshot(raw) == before


def test_verify_catches_truncated_png(raw, tmp_path):
    raw, expected, truncated = raw
    out = tmp_path / "organized"
    result = organize(raw, out, "--verify")
    assert result.exit_code == 0, result.output
    rejects = {(r["path"], r["reason"]) for r in read_jsonl(out / "rejected.jsonl")}
    assert rejects == expected | {(str(truncated), "unreadable")}
    assert len(read_jsonl(out / "manifest.jsonl")) == 7
    scene = truncated.parent.parent.name
    assert not (out / "train" / "A" / f"{scene}_000003.png").exists()


def test_verify_in_parallel_workers(pristine, tmp_path):
    raw = tmp_path / "raw"
    write_sample(raw, scenes=2, frames=10, size=(32, 24), seed=1)
    victim = next(raw.glob("train/*/sharp/000007.png"))
    victim.write_bytes(victim.read_bytes()[:-40])  # cut the IEND chunk and the end of the pixel data
    p = verify_plan(plan(raw, "blur"), workers=2)
    assert [(r.path, r.reason) for r in p.rejects] == [(str(victim), "unreadable")]
    assert len(p.pairs) == 19


def test_rerun_is_idempotent_and_removes_stale(raw, tmp_path):
    raw, _, _ = raw
    out = tmp_path / "organized"
    assert organize(raw, out).exit_code == 0
    manifest, rejected = (out / "manifest.jsonl").read_bytes(), (out / "rejected.jsonl").read_bytes()
    inodes = {p: p.stat().st_ino for p in out.rglob("*.png")}
    result = organize(raw, out)
    assert result.exit_code == 0, result.output
    assert "0 written, 16 unchanged, 0 stale removed" in result.output
    assert (out / "manifest.jsonl").read_bytes() == manifest and (
        out / "rejected.jsonl"
    ).read_bytes() == rejected
    assert {p: p.stat().st_ino for p in out.rglob("*.png")} == inodes
    # A source disappears: its pair leaves OUT (both sides), the other side becomes a reject; RAW is not touched.
    row = read_jsonl(out / "manifest.jsonl")[-1]
    (raw / row["split"] / row["scene"] / "sharp" / f"{row['frame']}.png").unlink()
    (out / "train" / "A" / ".leftover.png.tmp-organize").write_bytes(b"interrupted run")
    before = snapshot(raw)
    result = organize(raw, out)
    assert result.exit_code == 0, result.output
    assert "0 written, 14 unchanged, 3 stale removed" in result.output
    assert not (out / row["a"]).exists() and not (out / row["b"]).exists()
    assert row not in read_jsonl(out / "manifest.jsonl")
    assert len(read_jsonl(out / "rejected.jsonl")) == 5
    assert snapshot(raw) == before
    assert sorted(p.name for p in (out / "train" / "A").iterdir() if p.name.startswith(".")) == []


def test_changed_source_is_replaced(pristine, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(pristine, raw)
    out = tmp_path / "out"
    assert organize(raw, out, "--link", "copy").exit_code == 0
    row = read_jsonl(out / "manifest.jsonl")[0]
    src = raw / row["split"] / row["scene"] / "sharp" / f"{row['frame']}.png"
    cv2.imwrite(str(src), np.full((32, 48, 3), 9, np.uint8))
    cv2.imwrite(str(src.parent.parent / "blur_gamma" / src.name), np.full((32, 48, 3), 9, np.uint8))
    result = organize(raw, out, "--link", "copy")
    assert "4 written, 20 unchanged" not in result.output and "2 written, 22 unchanged" in result.output
    assert (out / row["b"]).read_bytes() == src.read_bytes()


def test_blur_choice_is_recorded(pristine, tmp_path):
    out = tmp_path / "out"
    assert organize(pristine, out, "--blur", "blur", "--link", "copy").exit_code == 0
    row = read_jsonl(out / "manifest.jsonl")[0]
    assert row["blur"] == "blur"
    src = pristine / row["split"] / row["scene"] / "blur" / f"{row['frame']}.png"
    assert (out / row["a"]).read_bytes() == src.read_bytes()


def test_strict_writes_nothing(raw, tmp_path, pristine):
    raw, _, _ = raw
    out = tmp_path / "organized"
    result = organize(raw, out, "--strict")
    assert result.exit_code == 1
    assert "4 rejected" in result.output and "--strict: nothing written" in result.output
    assert "missing_sharp" in result.output and "Traceback" not in result.output
    assert not out.exists()
    assert organize(pristine, out, "--strict").exit_code == 0
    assert len(read_jsonl(out / "manifest.jsonl")) == 12


def test_bad_raw_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    flat = tmp_path / "GOPRO_Large_all" / "train" / "GOPR0372_07_00"
    flat.mkdir(parents=True)
    cv2.imwrite(str(flat / "000001.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "file").write_text("x")
    for bad in ("missing", "empty", "GOPRO_Large_all", "file"):
        result = organize(tmp_path / bad, tmp_path / "out")
        assert result.exit_code == 2, (bad, result.output)
        assert str(tmp_path / bad) in result.output and "Traceback" not in result.output
        assert "SCENE/{blur,blur_gamma,sharp}" in result.output
    assert not (tmp_path / "out").exists()


def test_out_inside_raw_is_refused(pristine, tmp_path):
    before = snapshot(pristine)
    for out in (pristine / "organized", pristine, pristine / "train" / "x"):
        result = organize(pristine, out)
        assert result.exit_code == 2 and "is inside --raw" in result.output
    assert snapshot(pristine) == before
    # RAW inside a split folder OUT writes and cleans: train/ of a GOPRO tree, and a `val` split just the same.
    out = tmp_path / "out"
    for split in ("train", "val"):
        raw = out / split / "raw"
        shutil.copytree(pristine, raw)
        if split == "val":
            shutil.rmtree(raw / "train")
            (raw / "test").rename(raw / "val")
        inside = snapshot(out)
        with pytest.raises(UsageError, match=rf"is inside --out {out}/{split}, which organize rewrites"):
            run(OrganizeConfig(raw=str(raw), out=str(out)))
        assert snapshot(out) == inside
        shutil.rmtree(out / split)
    # Beside the splits (OUT/raw) it is left alone and organizes.
    shutil.copytree(pristine, out / "raw")
    assert run(OrganizeConfig(raw=str(out / "raw"), out=str(out), link="copy")).written == 24


def test_hardlink_falls_back_to_copy_across_filesystems(pristine, tmp_path, monkeypatch, capsys):
    def no_cross_device_links(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_cross_device_links)
    out = tmp_path / "out"
    stats = run(OrganizeConfig(raw=str(pristine), out=str(out), link="hardlink"))
    assert stats.fell_back and stats.written == 24
    err = capsys.readouterr().err
    assert err.count("cannot hardlink") == 1 and "copying instead" in err
    for row in read_jsonl(out / "manifest.jsonl"):
        src = pristine / row["split"] / row["scene"] / "sharp" / f"{row['frame']}.png"
        assert (out / row["b"]).read_bytes() == src.read_bytes()
        assert (out / row["b"]).stat().st_ino != src.stat().st_ino


def test_nothing_to_organize_is_a_data_error(tmp_path):
    raw = tmp_path / "raw" / "train" / "GOPR0001_07_00"
    (raw / "sharp").mkdir(parents=True)
    (raw / "sharp" / "000001.png").write_bytes(b"")
    with pytest.raises(DataError, match="no good pairs"):
        run(OrganizeConfig(raw=str(tmp_path / "raw"), out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_config_file_and_flags(pristine, tmp_path, monkeypatch):
    out = tmp_path / "from-config"
    (tmp_path / "p.yaml").write_text(f"organize: {{raw: {pristine}, out: {out}, link: copy, blur: blur}}\n")
    result = runner.invoke(app, ["organize", "--config", str(tmp_path / "p.yaml"), "--link", "symlink"])
    assert result.exit_code == 0, result.output
    row = read_jsonl(out / "manifest.jsonl")[0]
    assert row["blur"] == "blur" and (out / row["a"]).is_symlink()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text("organize: {raw: nowhere}\n")
    result = runner.invoke(app, ["organize"])
    assert result.exit_code == 2 and "--raw nowhere: not found" in result.output


def test_colliding_output_names_are_refused(tmp_path):
    """Scene `a_b` frame `1` and scene `a` frame `b_1` would both become train/A/a_b_1.png: refused, nothing written."""
    raw = tmp_path / "raw"
    img = np.zeros((8, 8, 3), np.uint8)
    for scene, frame in (("a_b", "1"), ("a", "b_1")):
        for folder in ("blur_gamma", "sharp"):
            (raw / "train" / scene / folder).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(raw / "train" / scene / folder / f"{frame}.png"), img)
    result = CliRunner().invoke(app, ["organize", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "a_b_1.png" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
