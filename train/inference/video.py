"""Videos through a Deblurrer: `trainctl deblur clip.mp4 --out out/` writes out/clip.mp4, every frame deblurred.

Read and written with PyAV (FFmpeg's libraries, bundled in its wheel), which OpenCV's VideoWriter cannot replace:
that rounds odd sizes down to even ones and writes pictures only. The output keeps the input's width and height
(odd ones too), frame count and frame timestamps (so its frame rate and duration), colour tags and display
rotation; its audio streams are copied as they are (re-encoded only where the output container cannot hold their
codec, and the output line says so). The video codec is H.264 by default (train.inference.video_codecs says what
is chosen and why). Frames go through the model in batches: a reader thread decodes the next batch and a writer
thread encodes the last one while the model runs, and at most a few batches are in memory, however long the
video. A video that ends early or has a damaged frame is reported with that frame's index; the frames before it
are kept in the output. The output is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.console import debug_enabled, is_tty, log
from train.inference import video_codecs
from train.inference.images import VIDEO_SUFFIXES
from train.inference.video_output import Output, VideoFailure

QUEUED_BATCHES = 2


def output_name(src: Path, codec: video_codecs.Codec | None = None) -> str:
    """The output file name: the input's stem, in its container when that holds the codec (else the codec's)."""
    codec = codec or video_codecs.CODECS[video_codecs.DEFAULT]
    return f"{src.stem}{video_codecs.container(src.suffix, codec)}"


class _Progress:
    """Frames done, frames/s and ETA: a rich bar on a terminal, a line every few seconds otherwise."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.start = self.last = time.monotonic()
        self.bar: Any = None
        if is_tty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(name, total=total or None, rate="")

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        rate = self.done / max(now - self.start, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, advance=n, rate=f"{rate:.1f} frames/s")
        elif now - self.last >= 5.0:
            self.last = now
            eta = f", ETA {(self.total - self.done) / rate:.0f} s" if self.total and rate > 0 else ""
            log(f"{self.name}: {self.done}/{self.total or '?'} frames ({rate:.1f} frames/s{eta})")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@dataclass
class _Batch:
    frames: list[np.ndarray] = field(default_factory=list)  # RGB uint8, decoded
    stamps: list[tuple[int | None, int | None]] = field(default_factory=list)  # (pts, duration) per frame
    audio: list[Any] = field(default_factory=list)  # packets to copy / frames to re-encode, demuxed meanwhile


@dataclass
class _End:
    damaged: str | None  # what stopped the decoding early, None at the end of the file


def _rgb(frame: Any) -> np.ndarray:
    """A decoded frame as RGB, converted with the matrix and range the frame is tagged with."""
    full = 2 if frame.color_range == 2 else None  # JPEG (full) range; yuvj formats say so themselves
    return frame.to_ndarray(format="rgb24", src_color_range=full)


def _items(container: Any, video: Any, audio: list[Any], reencode: set[int]) -> Iterator[tuple[str, Any]]:
    """("video", frame) and ("audio", packet or frame) in file order; FFmpegError where the input is damaged."""
    for packet in container.demux(video, *audio):
        if packet.stream.type == "video":
            for frame in packet.decode():
                yield "video", frame
        elif packet.stream.index in reencode:
            for frame in packet.decode():
                yield "audio", (packet.stream.index, frame)
        elif packet.dts is not None:  # the end-of-stream packet carries nothing to copy
            yield "audio", (packet.stream.index, packet)


def _first_frame(items: Iterator[tuple[str, Any]], early: list[tuple[str, Any]]) -> Any:
    """The first video frame (None if there is none); the audio demuxed before it goes to `early`."""
    for kind, item in items:
        if kind == "video":
            return item
        early.append((kind, item))
    return None


def _reader(items: Iterator[tuple[str, Any]], batch: int, out: queue.Queue, stop: threading.Event) -> None:
    """Decode frames into batches (with the audio demuxed alongside); an _End says where the input stopped."""
    import av

    current, damaged = _Batch(), None
    try:
        for kind, item in items:
            if stop.is_set():
                break
            if kind == "audio":
                current.audio.append(item)
                continue
            current.frames.append(_rgb(item))
            current.stamps.append((item.pts, item.duration))
            if len(current.frames) == batch:
                out.put(current)
                current = _Batch()
    except av.FFmpegError as exc:
        damaged = str(exc)
    if current.frames or current.audio:
        out.put(current)
    out.put(_End(damaged))


def _writer(output: Output, inbox: queue.Queue, errors: list[BaseException]) -> None:
    while (item := inbox.get()) is not None:
        if errors:
            continue  # keep taking batches, so the model thread is never left blocked
        try:
            output.write(*item)
        except BaseException as exc:  # reported by the caller, after the threads are joined
            errors.append(exc)


def _announced(container: Any, video: Any) -> tuple[int, bool]:
    """(frames the file says it holds, whether that is a count rather than an estimate from its duration)."""
    if video.frames:
        return int(video.frames), True
    rate = video.average_rate or video.guessed_rate
    if rate and video.duration and video.time_base:
        return round(video.duration * video.time_base * rate), False
    if rate and container.duration:
        return round(Fraction(container.duration, 1_000_000) * rate), False
    return 0, False


def deblur_video(
    deblurrer: Any, src: Path, dst: Path, batch: int = 4, choice: video_codecs.Choice | None = None
) -> bool:
    """Deblur every frame of `src` into `dst`; False (after logging why) when the video could not be read whole."""
    import av

    if src.suffix.lower() not in VIDEO_SUFFIXES:
        log(f"failed: {src}: not a video file")
        return False
    av.logging.set_level(av.logging.WARNING if debug_enabled() else None)  # we report damage ourselves
    choice = choice or video_codecs.choose(None, None)
    try:
        container = av.open(str(src))
    except (av.FFmpegError, OSError):
        log(f"failed: {src}: cannot open the video (missing, damaged or an unknown codec)")
        return False
    try:
        return _deblur(deblurrer, container, src, dst, batch, choice)
    finally:
        container.close()


def _deblur(deblurrer: Any, container: Any, src: Path, dst: Path, batch: int, choice: Any) -> bool:
    import av

    if not container.streams.video:
        log(f"failed: {src}: no video stream")
        return False
    video, audio = container.streams.video[0], list(container.streams.audio)
    video.thread_type = "AUTO"
    suffix = dst.suffix.lower()
    reencode = {a.index for a in audio if video_codecs.audio_plan(suffix, a.codec_context.name)}
    items = _items(container, video, audio, reencode)
    early: list[tuple[str, Any]] = []  # audio demuxed before the first frame
    try:
        first = _first_frame(items, early)
    except av.FFmpegError:
        first = None
    if first is None:
        log(f"failed: {src}: no frame could be decoded")
        return False
    total, counted = _announced(container, video)
    tmp = dst.with_name(f".{dst.stem}.tmp-{os.getpid()}{dst.suffix}")
    try:
        output = Output(tmp, choice, container, video, audio, first)
    except VideoFailure as exc:
        log(f"failed: {dst}: {exc}")
        return False
    inbox: queue.Queue = queue.Queue(QUEUED_BATCHES)
    outbox: queue.Queue = queue.Queue(QUEUED_BATCHES)
    errors: list[BaseException] = []
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_reader,
            args=(itertools.chain(early, [("video", first)], items), batch, inbox, stop),
            daemon=True,
        ),
        threading.Thread(target=_writer, args=(output, outbox, errors), daemon=True),
    ]
    for thread in threads:
        thread.start()
    progress, done = _Progress(src.name, total), 0
    try:
        while isinstance(item := inbox.get(), _Batch):
            restored = deblurrer.restore_uint8(np.stack(item.frames)) if item.frames else None
            outbox.put((restored, item.stamps, item.audio))
            done += len(item.frames)
            progress.advance(len(item.frames))
        end = item
    except BaseException:
        stop.set()  # the reader stops at its next frame; drain what it queued so it is not left blocked
        while not isinstance(inbox.get(), _End):
            pass
        errors.append(RuntimeError("interrupted"))
        raise
    finally:
        outbox.put(None)
        for thread in threads:
            thread.join()
        progress.close()
        if not errors:
            try:
                output.close()
            except av.FFmpegError as exc:
                errors.append(exc)
        else:
            output.abandon()
        if errors:
            tmp.unlink(missing_ok=True)
    if errors:
        log(f"failed: {src}: cannot write frames ({errors[0]})")
        return False
    os.replace(tmp, dst)
    rate = video.average_rate or video.guessed_rate
    fps = f" at {float(rate):g} fps" if rate else ""
    log(f"{src.name}: {done} frames {video.width}x{video.height}{fps} -> {dst} ({output.describe()})")
    short = done < total if counted else done < total * 0.99 - 1  # an estimate is rounded
    if end.damaged or (total and short):
        announced = f" ({'' if counted else 'about '}{total} frames announced)" if total else ""
        log(
            f"failed: {src}: frame {done}: the video ends early or the frame is damaged{announced}; "
            f"the {done} frames before it are in {dst}"
        )
        return False
    return True
