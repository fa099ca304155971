"""Videos through a Deblurrer: `trainctl deblur clip.mp4 --out out/` writes out/clip.mp4, every frame deblurred.

Frames are read and written with OpenCV (its FFmpeg backend), keep the video's size, frame rate and frame count,
and go through the model in batches: a reader thread decodes the next batch and a writer thread encodes the last
one while the model runs, and at most a few batches are in memory, however long the video. Audio is not carried
over (OpenCV reads and writes pictures only): the output says so. A video that ends early or has a damaged frame
is reported with that frame's index; the frames before it are kept in the output. The output is written under a
temporary name and renamed into place when complete.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.console import debug_enabled, is_tty, log
from train.inference.images import VIDEO_SUFFIXES

# What OpenCV's FFmpeg backend encodes in each container (H.264 needs a hardware or licensed encoder: not here).
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
QUEUED_BATCHES = 2


def _quiet_ffmpeg() -> None:
    """FFmpeg logs every damaged packet to stderr; we report the frame ourselves (--debug shows FFmpeg's log)."""
    if not debug_enabled():
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def output_name(src: Path) -> str:
    """The output file name: the same name, in a container OpenCV can write (.webm becomes .mp4)."""
    suffix = src.suffix.lower()
    return src.name if suffix in FOURCC else f"{src.stem}.mp4"


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


def _reader(capture: Any, batch: int, out: queue.Queue, stop: threading.Event) -> None:
    """Decode frames into RGB batches; None marks the end (or the first frame that would not decode)."""
    frames: list[np.ndarray] = []
    while not stop.is_set():
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if len(frames) == batch:
            out.put(np.stack(frames))
            frames = []
    if frames:
        out.put(np.stack(frames))
    out.put(None)


def _writer(writer: Any, inbox: queue.Queue, errors: list[BaseException]) -> None:
    while (frames := inbox.get()) is not None:
        try:
            for rgb in frames:
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        except BaseException as exc:  # reported by the caller, after the threads are joined
            errors.append(exc)


def deblur_video(deblurrer: Any, src: Path, dst: Path, batch: int = 4) -> bool:
    """Deblur every frame of `src` into `dst`; False (after logging why) when the video could not be read whole."""
    if src.suffix.lower() not in VIDEO_SUFFIXES:
        log(f"failed: {src}: not a video file")
        return False
    _quiet_ffmpeg()
    capture = cv2.VideoCapture(str(src))
    if not capture.isOpened():
        log(f"failed: {src}: cannot open the video (missing, damaged or an unknown codec)")
        return False
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    tmp = dst.with_name(f".{dst.stem}.tmp-{os.getpid()}{dst.suffix}")
    writer = cv2.VideoWriter(
        str(tmp), cv2.VideoWriter_fourcc(*FOURCC.get(dst.suffix.lower(), "mp4v")), fps, size
    )
    if not writer.isOpened():
        capture.release()
        log(f"failed: {dst}: OpenCV cannot write this container")
        return False
    inbox: queue.Queue = queue.Queue(QUEUED_BATCHES)
    outbox: queue.Queue = queue.Queue(QUEUED_BATCHES)
    errors: list[BaseException] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_reader, args=(capture, batch, inbox, stop), daemon=True),
        threading.Thread(target=_writer, args=(writer, outbox, errors), daemon=True),
    ]
    for thread in threads:
        thread.start()
    progress, done = _Progress(src.name, total), 0
    try:
        while (frames := inbox.get()) is not None:
            outbox.put(deblurrer.restore_uint8(frames))
            done += len(frames)
            progress.advance(len(frames))
    except BaseException:
        stop.set()  # the reader stops at its next frame; drain what it queued so it is not left blocked
        while inbox.get() is not None:
            pass
        errors.append(RuntimeError("interrupted"))
        raise
    finally:
        outbox.put(None)
        for thread in threads:
            thread.join()
        progress.close()
        capture.release()
        writer.release()
        if errors:
            tmp.unlink(missing_ok=True)
    if errors or done == 0:
        tmp.unlink(missing_ok=True)
        reason = f"cannot write frames ({errors[0]})" if errors else "no frame could be decoded"
        log(f"failed: {src}: {reason}")
        return False
    os.replace(tmp, dst)
    log(f"{src.name}: {done} frames {size[0]}x{size[1]} at {fps:g} fps -> {dst} (audio is not carried over)")
    if total and done < total:
        log(
            f"failed: {src}: frame {done}: the video ends early or the frame is damaged ({total} frames announced); "
            f"the {done} frames before it are in {dst}"
        )
        return False
    return True
