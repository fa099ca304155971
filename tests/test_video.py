"""Videos through `trainctl deblur`: size (odd too), frame count, frame rate and duration kept, each frame deblurred
like the image, audio copied (or re-encoded where the container needs it, said so), H.264 by default, a truncated
video reported with its frame index (the frames before it kept)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_deblurrer import smooth_image
from tiny_generators import local_generator, save_version
from typer.testing import CliRunner

from pipeline.errors import UsageError
from train.cli import app
from train.inference import video_codecs
from train.inference.deblurrer import Deblurrer

runner = CliRunner()
RATE = 48000


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    fps: int,
    codec: str,
    pix_fmt: str,
    audio: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """A clip of RGB `frames` at `fps`, with a 440 Hz stereo tone as long as the video in codec `audio`."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=fps, options=options or {})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = pix_fmt
        sound = out.add_stream(audio, rate=RATE, layout="stereo") if audio else None
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            n = RATE * len(frames) // fps
            tone = (np.sin(np.arange(n) * 2 * np.pi * 440 / RATE) * 9000).astype(np.int16)
            for start in range(0, n, 1024):
                chunk = np.repeat(tone[start : start + 1024][None], 2, axis=0)  # planar stereo
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk), format="s16p", layout="stereo"
                )
                frame.sample_rate, frame.pts = RATE, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def read_clip(path: Path) -> tuple[list[np.ndarray], dict]:
    """The decoded RGB frames (PyAV, as the tool decodes them) and the file's streams, summarized."""
    with av.open(str(path)) as clip:
        video = clip.streams.video[0]
        info = {
            "codec": video.codec_context.name,
            "size": (video.codec_context.width, video.codec_context.height),
            "rate": video.average_rate,
            "duration": Fraction(clip.duration, 1_000_000) if clip.duration else None,
            "audio": [a.codec_context.name for a in clip.streams.audio],
        }
        frames = [f.to_ndarray(format="rgb24") for f in clip.decode(video=0)]
    return frames, info


def read_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as clip:
        return np.concatenate([f.to_ndarray() for f in clip.decode(audio=0)], axis=1)


def moving(h: int, w: int, n: int) -> list[np.ndarray]:
    base = smooth_image(h, w + 4 * n, seed=1)
    return [np.ascontiguousarray(base[:, 4 * i : 4 * i + w]) for i in range(n)]


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> Path:
    return save_version(tmp_path_factory.mktemp("run"), local_generator(seed=5))


def deblur(version: Path, *args: str) -> object:
    return runner.invoke(app, ["deblur", "--model", str(version), *args])


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "written"),
    [("clip.mp4", "mpeg4", "yuv420p", "clip.mp4"), ("clip.avi", "mjpeg", "yuvj420p", "clip.mp4")],
)
def test_frames_count_size_and_rate_are_kept_in_h264(
    tmp_path: Path, version: Path, name: str, codec: str, pix_fmt: str, written: str
) -> None:
    src = write_clip(tmp_path / name, moving(80, 96, 11), 12, codec, pix_fmt)  # 11: not a multiple of 4
    out = tmp_path / "out"
    result = deblur(version, str(src), "--out", str(out), "--batch", "4")
    assert result.exit_code == 0, result.output
    assert f"{name}: 11 frames 96x80 at 12 fps -> {out / written} (H.264 (libx264), yuv420p, crf 18)" in (
        result.output
    )
    assert "audio" not in result.output  # nothing to say about audio a clip does not have
    got, info = read_clip(out / written)
    decoded, src_info = read_clip(src)
    assert info["codec"] == "h264" and info["size"] == (96, 80) and info["rate"] == 12 and len(got) == 11
    assert info["duration"] == src_info["duration"] and abs(info["duration"] - Fraction(11, 12)) < 1e-6
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp file left
    # Each frame is what the Python API gives for the decoded frame, through the same encoder: encoding the API's
    # frames ourselves (libx264, CRF 18, veryfast, 4:2:0) gives the same pictures back (the codec's loss is the
    # difference).
    d = Deblurrer(str(version))
    want = [d(frame) for frame in decoded]
    reference, _ = read_clip(
        write_clip(
            tmp_path / "ref.mp4", want, 12, "libx264", "yuv420p", options={"crf": "18", "preset": "veryfast"}
        )
    )
    for frame, ref, api, before in zip(got, reference, want, decoded, strict=True):
        assert np.abs(frame.astype(np.float32) - ref).mean() < 0.5
        assert not np.array_equal(api, before)  # the model really changed the frame


def test_odd_size_and_audio_are_kept_and_lossless_frames_are_the_api_s(tmp_path: Path, version: Path) -> None:
    """The issue's clip: 317x183 FFV1 in MKV, 40 frames at 25 fps, with PCM audio."""
    frames = moving(183, 317, 40)
    src = write_clip(tmp_path / "odd.mkv", frames, 25, "ffv1", "bgr0", audio="pcm_s16le")
    out = tmp_path / "out"
    result = deblur(version, str(src), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "odd.mkv: 40 frames 317x183 at 25 fps" in result.output
    assert "(H.264 (libx264), yuv444p, crf 18; audio copied (pcm_s16le))" in result.output
    assert "not carried over" not in result.output
    got, info = read_clip(out / "odd.mkv")
    assert info["size"] == (317, 183) and len(got) == 40 and info["rate"] == 25 and info["codec"] == "h264"
    assert abs(info["duration"] - Fraction(8, 5)) < 1e-3 and info["audio"] == ["pcm_s16le"]
    np.testing.assert_array_equal(read_audio(out / "odd.mkv"), read_audio(src))  # the samples, copied
    # Lossless: every frame is exactly what the Python API gives for the decoded frame (batches of 4, as run).
    result = deblur(version, str(src), "--out", str(tmp_path / "lossless"), "--codec", "ffv1")
    assert result.exit_code == 0, result.output
    assert "(FFV1, lossless bgr0; audio copied (pcm_s16le))" in result.output
    got, info = read_clip(tmp_path / "lossless" / "odd.mkv")
    d = Deblurrer(str(version))
    assert info["size"] == (317, 183) and len(got) == 40
    want = np.concatenate([d.restore_uint8(np.stack(frames[i : i + 4])) for i in range(0, 40, 4)])
    np.testing.assert_array_equal(np.stack(got), want)
    calls = np.stack(
        [d(f) for f in frames[:4]]
    )  # one image at a time: rounded on the float path, within a level
    assert np.abs(want[:4].astype(np.int16) - calls).max() <= 1


def test_audio_the_output_container_cannot_hold_is_re_encoded_and_said(tmp_path: Path, version: Path) -> None:
    src = write_clip(tmp_path / "clip.avi", moving(64, 96, 12), 12, "mjpeg", "yuvj420p", audio="pcm_s16le")
    out = tmp_path / "out"
    result = deblur(version, str(src), "--out", str(out), "--crf", "23")
    assert result.exit_code == 0, result.output
    assert "crf 23; audio pcm_s16le re-encoded to aac (MP4 cannot hold pcm_s16le)" in result.output
    _, info = read_clip(out / "clip.mp4")
    assert info["audio"] == ["aac"]
    samples = read_audio(out / "clip.mp4")
    assert abs(samples.shape[1] - RATE) < 2048  # one second of sound, give or take the codec's frames


def test_codec_and_crf_are_checked_and_a_missing_h264_falls_back_by_name(
    tmp_path: Path, version: Path
) -> None:
    src = write_clip(tmp_path / "clip.mp4", moving(32, 48, 2), 10, "mpeg4", "yuv420p")
    for args, said in (
        (["--codec", "vp8"], "--codec vp8: not one of h264, mpeg4, ffv1"),
        (["--crf", "60"], "--crf 60: H.264 (libx264) takes 0 (best) to 51"),
        (["--codec", "ffv1", "--crf", "10"], "--crf 10: FFV1 is lossless and takes no quality setting"),
    ):
        result = deblur(version, str(src), "--out", str(tmp_path / "o"), *args)
        assert result.exit_code == 2 and said in result.output, result.output
    without_x264 = video_codecs.choose(None, 20, available=lambda encoder: encoder != "libx264")
    assert without_x264.codec.name == "mpeg4" and without_x264.crf is None
    assert without_x264.note.startswith("this FFmpeg has no libx264: MPEG-4 Part 2 instead")
    with pytest.raises(UsageError, match="has no libx264"):
        video_codecs.choose("h264", None, available=lambda encoder: encoder != "libx264")
    result = deblur(version, str(src), "--out", str(tmp_path / "q"), "--codec", "mpeg4", "--crf", "5")
    assert result.exit_code == 0 and "(MPEG-4 Part 2, yuv420p, quantizer 5)" in result.output


def test_display_rotation_is_carried(tmp_path: Path, version: Path) -> None:
    src = tmp_path / "phone.mp4"
    with av.open(str(src), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 48, 32, "yuv420p"
        video.set_display_rotation(90)
        for i, rgb in enumerate(moving(32, 48, 3)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    result = deblur(version, str(src), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "out" / "phone.mp4")) as clip:
        assert next(clip.decode(video=0)).rotation == 90


def test_a_truncated_video_is_reported_with_the_frame_index_and_the_frames_before_kept(
    tmp_path: Path, version: Path
) -> None:
    frames = [smooth_image(64, 96, seed=i) for i in range(10)]
    whole = write_clip(tmp_path / "whole.avi", frames, 10, "mjpeg", "yuvj420p").read_bytes()
    src = tmp_path / "cut.avi"
    src.write_bytes(whole[: int(len(whole) * 0.9)])  # the last frames' data gone, the header still says 10
    readable = 0
    with av.open(str(src)) as clip, pytest.raises(av.InvalidDataError):  # the cut frame does not decode
        for _ in clip.decode(video=0):
            readable += 1
    assert 0 < readable < 10
    out = tmp_path / "out"
    result = deblur(version, str(src), "--out", str(out))
    assert result.exit_code == 1
    assert (
        f"cut.avi: frame {readable}: the video ends early or the frame is damaged (10 frames announced)"
        in (result.output)
    )
    assert len(read_clip(out / "cut.mp4")[0]) == readable
