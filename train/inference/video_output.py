"""The deblurred video file: its streams set up from the input's, frames encoded, audio copied or re-encoded.

Set up from the input's first decoded frame: the same width and height, the codec and pixel format that
train.inference.video_codecs picks, the input's time base (frames keep their timestamps, so frame rate and
duration are kept, variable rates included), its colour matrix, primaries and transfer tags (the RGB frames are
converted back with the matrix they were decoded with, into the limited range every player reads right), and its
display rotation. The
container's header is written at set-up, so a combination the container refuses fails before any frame is
deblurred. Only the writer thread touches it after that.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from train.inference import video_codecs

# Colour matrices swscale converts with (AVColorSpace -> its Colorspace): BT.709, FCC, BT.470BG and SMPTE 170M
# (both BT.601), SMPTE 240M, BT.2020. Anything else (unspecified, RGB) was decoded with swscale's default, BT.601,
# and is tagged as such (SMPTE 170M) so players convert it back the way we read it.
MATRICES = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9}
BT601_TAG = 6
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG
CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 6: "5.1", 8: "7.1"}
CONTAINER_NAMES = {".mp4": "MP4", ".m4v": "M4V", ".mov": "MOV", ".mkv": "MKV", ".avi": "AVI"}


def _layout(layout: Any) -> str:
    """An encoder's channel layout for a decoded one: "2 channels" (order unknown, as in some PCM tracks) is
    taken as the usual layout of that many channels, which encoders such as AAC insist on."""
    return CHANNEL_LAYOUTS.get(layout.nb_channels, layout.name) if "channels" in layout.name else layout.name


def _container_options(suffix: str, video: Any) -> dict[str, str]:
    """MP4/MOV: count the movie's time in the video's own ticks, so the edit list that B-frames need keeps the
    duration exact (the muxer's default, milliseconds, would round it)."""
    base = video.time_base
    if suffix in (".mp4", ".m4v", ".mov") and base is not None and base.numerator == 1:
        return {"movie_timescale": str(base.denominator)}
    return {}


class VideoFailure(Exception):
    """The output file cannot be set up as planned; the message says why."""


class Output:
    """One output video file; `write` batches of restored frames and audio, then `close` (or `abandon`)."""

    def __init__(
        self, path: Path, choice: video_codecs.Choice, source: Any, video: Any, audio: list[Any], first: Any
    ) -> None:
        import av

        self.choice, self.suffix = choice, path.suffix.lower()
        try:
            self.container = av.open(str(path), "w", options=_container_options(self.suffix, video))
        except (av.FFmpegError, OSError) as exc:
            raise VideoFailure(f"cannot create {path.name} ({exc})") from None
        try:
            self._video(video, first)
            self.audio: dict[int, tuple[Any, str | None]] = {}
            self.notes = self._audio(audio)
            others = len(source.streams) - 1 - len(audio)
            if others:
                self.notes.append(f"{others} other stream{'s' if others > 1 else ''} not carried over")
            self.container.start_encoding()  # the header now: a refusal comes before any frame is deblurred
        except (av.FFmpegError, ValueError, TypeError) as exc:
            self.abandon()
            raise VideoFailure(f"cannot write this video as {self.describe()} ({exc})") from None

    def _video(self, video: Any, first: Any) -> None:
        codec = self.choice.codec
        self.rate = video.average_rate or video.guessed_rate or Fraction(30)
        self.time_base = video.time_base or 1 / self.rate
        self.pixel_format = codec.pixel_format(first.width, first.height, first.format.name)
        stream = self.container.add_stream(
            codec.encoder, rate=self.rate, options=codec.options(self.choice.crf)
        )
        stream.width, stream.height, stream.pix_fmt = first.width, first.height, self.pixel_format
        stream.time_base = stream.codec_context.time_base = self.time_base
        self.matrix = self.range = None
        if self.pixel_format != "bgr0":
            context = stream.codec_context
            self.matrix = MATRICES.get(first.colorspace, 5)
            self.range = LIMITED_RANGE  # what every player reads right, full-range (JPEG, MJPEG) inputs too
            context.colorspace = first.colorspace if first.colorspace in MATRICES else BT601_TAG
            context.color_range = self.range
            context.color_primaries, context.color_trc = first.color_primaries, first.color_trc
        if first.rotation:
            stream.set_display_rotation(first.rotation)
        self.video, self.last_pts = stream, None

    def _audio(self, audio: list[Any]) -> list[str]:
        """Copy each audio stream as it is, or set up its re-encoding; the notes for the output line."""

        copied, notes = [], []
        for stream in audio:
            name = stream.codec_context.name
            encoder = video_codecs.audio_plan(self.suffix, name)
            if encoder is None:
                out = self.container.add_stream_from_template(stream)
                copied.append(name)
            else:
                out = self.container.add_stream(encoder, rate=stream.codec_context.sample_rate or 48000)
                out.layout = _layout(stream.codec_context.layout)
                box = CONTAINER_NAMES[self.suffix]
                notes.append(
                    f"audio {name} re-encoded to {out.codec_context.name} ({box} cannot hold {name})"
                )
            self.audio[stream.index] = (out, encoder)
        if copied:
            streams = f"{len(copied)} audio streams" if len(copied) > 1 else "audio"
            notes.insert(0, f"{streams} copied ({', '.join(copied)})")
        return notes

    def _pts(self, pts: int | None, duration: int | None) -> int:
        """The frame's own timestamp; made up (one frame after the last) where it is missing or out of order."""
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):
            step = duration or max(1, round(1 / (self.rate * self.time_base)))
            pts = 0 if self.last_pts is None else self.last_pts + step
        self.last_pts = pts
        return pts

    def write(self, frames: np.ndarray | None, stamps: list[tuple[Any, Any]], audio: list[Any]) -> None:
        import av

        for rgb, (pts, duration) in zip(frames if frames is not None else [], stamps, strict=True):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if self.matrix is None:
                frame = frame.reformat(format=self.pixel_format)
            else:
                frame = frame.reformat(
                    format=self.pixel_format, dst_colorspace=self.matrix, dst_color_range=self.range
                )
            frame.pts, frame.time_base = self._pts(pts, duration), self.time_base
            if duration:
                frame.duration = duration
            self.container.mux(self.video.encode(frame))
        for index, item in audio:
            out, encoder = self.audio[index]
            if encoder is None:
                item.stream = out
                self.container.mux(item)
            else:
                self.container.mux(out.encode(item))

    def close(self) -> None:
        """Flush the encoders and finish the file (its index, for MP4)."""
        self.container.mux(self.video.encode(None))
        for out, encoder in self.audio.values():
            if encoder is not None:
                self.container.mux(out.encode(None))
        self.container.close()

    def abandon(self) -> None:
        import contextlib

        import av

        with contextlib.suppress(av.FFmpegError, OSError):
            self.container.close()

    def describe(self) -> str:
        pixel_format = getattr(self, "pixel_format", "")
        parts = [self.choice.codec.describe(pixel_format, self.choice.crf)]
        parts += [self.choice.note] if self.choice.note else []
        return "; ".join(parts + getattr(self, "notes", []))
