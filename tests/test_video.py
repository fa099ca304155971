"""Videos through `trainctl deblur`: frame count, size and frame rate kept, each frame deblurred like the image,
a truncated video reported with its frame index (the frames before it kept), and constant memory."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_deblurrer import smooth_image
from tiny_generators import local_generator, save_version
from typer.testing import CliRunner

from train.cli import app
from train.inference.deblurrer import Deblurrer

runner = CliRunner()


def write_clip(path: Path, frames: list[np.ndarray], fps: float, fourcc: str) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def read_clip(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames, fps


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> Path:
    return save_version(tmp_path_factory.mktemp("run"), local_generator(seed=5))


@pytest.mark.parametrize(("name", "fourcc"), [("clip.mp4", "mp4v"), ("clip.avi", "MJPG")])
def test_video_frames_count_size_and_rate_are_kept(
    tmp_path: Path, version: Path, name: str, fourcc: str
) -> None:
    # A moving texture, 11 frames (not a multiple of the batch of 4).
    base = smooth_image(80, 200, seed=1)
    frames = [np.ascontiguousarray(base[:, 4 * i : 4 * i + 96]) for i in range(11)]
    src = write_clip(tmp_path / name, frames, 12.0, fourcc)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["deblur", "--model", str(version), str(src), "--out", str(out), "--batch", "4"]
    )
    assert result.exit_code == 0, result.output
    assert (
        f"{name}: 11 frames 96x80 at 12 fps" in result.output and "audio is not carried over" in result.output
    )
    written, fps = read_clip(out / name)
    decoded, _ = read_clip(src)
    assert len(written) == 11 and fps == pytest.approx(12.0) and written[0].shape == (80, 96, 3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp file left
    # Each frame is what the Python API gives for the decoded frame, through the same encoder: encoding the
    # API's frames ourselves gives the same file content back (the codec's loss is the only difference).
    d = Deblurrer(str(version))
    want = [d(frame) for frame in decoded]
    reference, _ = read_clip(write_clip(tmp_path / f"ref{Path(name).suffix}", want, 12.0, fourcc))
    for got, ref, api, frame in zip(written, reference, want, decoded, strict=True):
        assert np.abs(got.astype(np.float32) - ref).mean() < 0.5
        assert not np.array_equal(api, frame)  # the model really changed the frame


def test_a_truncated_video_is_reported_with_the_frame_index_and_the_frames_before_kept(
    tmp_path: Path, version: Path
) -> None:
    frames = [smooth_image(64, 96, seed=i) for i in range(10)]
    whole = write_clip(tmp_path / "whole.avi", frames, 10.0, "MJPG").read_bytes()
    src = tmp_path / "cut.avi"
    src.write_bytes(whole[: int(len(whole) * 0.9)])  # the last frames' data gone, the header still says 10
    readable = len(read_clip(src)[0])
    assert 0 < readable < 10
    out = tmp_path / "out"
    result = runner.invoke(app, ["deblur", "--model", str(version), str(src), "--out", str(out)])
    assert result.exit_code == 1
    assert (
        f"cut.avi: frame {readable}: the video ends early or the frame is damaged (10 frames announced)"
        in (result.output)
    )
    assert len(read_clip(out / "cut.avi")[0]) == readable
