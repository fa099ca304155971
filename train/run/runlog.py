"""Training logs: a progress line every `log_every` steps and TensorBoard scalars/images in RUN/logs.

With progressive training (`train.stages`) the line and TensorBoard (`train/stage`, 1-based) name the stage of the
last step; speed counts the images of each stage's batch, and the time left is the pixels left at the pixel rate
measured (a 384 px crop costs about 9 of 128 px).

Summaries are written with the core `tf.summary.write` op and TensorBoard's plugin metadata (scalars, images),
so training does not need the `tensorboard` package installed; TensorBoard reads the files as usual.
Only the chief writes; other workers get a no-op writer, so every worker can call the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.console import log
from pipeline.fsio import join

LOG_DIR = "logs"
SCALAR_NAMES = {"gp": "gradient_penalty", "critic": "critic_total", "generator": "generator_total"}


def format_duration(seconds: float) -> str:
    """`95` -> `1m35s`, `7300` -> `2h01m`; short enough for a progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_progress(
    step: int,
    steps: int,
    losses: str,
    lr: float,
    images_per_s: float | None,
    eta_s: float | None,
    stage: str | None = None,
) -> str:
    """One progress line: step (and stage), the recipe's losses (`losses`, already formatted), learning rate,
    speed, time left (speed and time left once measured)."""
    width = len(str(steps))
    parts = [f"step {step:>{width}}/{steps}", *([stage] if stage else [])]
    parts += [losses, f"lr {lr:.3g}"]
    if images_per_s is not None:
        parts.append(f"{images_per_s:.2f} img/s")
    if eta_s is not None:
        parts.append(f"ETA {format_duration(eta_s)}")
    return "  ".join(parts)


def _metadata(plugin: str, data_class: int) -> bytes:
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata(data_class=data_class)
    meta.plugin_data.plugin_name = plugin
    return meta.SerializeToString()


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar (same event format as `tensorboard.summary.scalar`)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    meta = _metadata("scalars", summary_pb2.DATA_CLASS_SCALAR)
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=meta)


def write_image(tag: str, rgb: np.ndarray, step: int) -> None:
    """A TensorBoard image: [width, height, PNG bytes] strings, as `tensorboard.summary.image` writes."""
    import cv2
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        return
    value = tf.constant([str(rgb.shape[1]).encode(), str(rgb.shape[0]).encode(), png.tobytes()])
    tf.summary.write(
        tag, value, step=step, metadata=_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE)
    )


class RunLog:
    """Progress lines and TensorBoard summaries for one fit (a no-op writer on non-chief workers).

    Speed and ETA count only steps run after the first call of the step function: that call also traces and
    compiles it and warms the input pipeline (a minute or more for a big model), which would make the first ETA
    of a short fit many times too long. ETA counts pixels, so a progressive run's later, larger stages weigh
    more."""

    def __init__(
        self,
        run_dir: str | Path,
        steps: int,
        global_batch: int,
        is_chief: bool,
        stages: list[Any] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`stages`: train.stages.Stage list of a progressive run (None: one stage of `global_batch`)."""
        import tensorflow as tf

        from train import stages as stage_plan

        self.tf = tf
        self.clock = clock
        self.steps = steps
        self.staged = stages is not None
        # Without stages the crop does not matter (pixels are images): one stage of the global batch.
        self.stages = stages if stages is not None else stage_plan.from_rows([(steps, 1, global_batch)])
        self.is_chief = is_chief
        self.writer = (
            tf.summary.create_file_writer(join(str(run_dir), LOG_DIR))
            if is_chief
            else tf.summary.create_noop_writer()
        )
        self._mark = (clock(), 0)
        self._calls = 0
        self.images_per_s: float | None = None
        self._pixels_per_s: float | None = None

    def start(self, step: int) -> None:
        self._mark, self._calls = (self.clock(), step), 0
        self.images_per_s = self._pixels_per_s = None

    def call_done(self, step: int) -> None:
        """A call of the step function has returned at `step`: the first one's time (start-up) is not counted."""
        self._calls += 1
        if self._calls == 1:
            self._mark = (self.clock(), step)

    def progress(self, step: int, metrics: dict[str, float], lr: float, losses: str) -> None:
        """Log a line (`losses`: the recipe's summary of `metrics`) and scalars; speed is measured since the
        previous line, or the end of the first call (or `start`), whichever came last."""
        now = self.clock()
        then, last_step = self._mark
        if step > last_step and now > then:
            self.images_per_s = self._count(last_step, step, pixels=False) / (now - then)
            self._pixels_per_s = self._count(last_step, step, pixels=True) / (now - then)
            self._mark = (now, step)
        left = self._count(step, self.steps, pixels=True)
        eta = left / self._pixels_per_s if self._pixels_per_s else None
        stage = self._stage(step)
        if self.is_chief:
            shown = stage.describe(len(self.stages)) if self.staged else None
            log(format_progress(step, self.steps, losses, lr, self.images_per_s, eta, shown))
        with self.writer.as_default(step=step):
            for name, value in metrics.items():
                write_scalar(f"loss/{SCALAR_NAMES.get(name, name)}", value, step)
            write_scalar("train/learning_rate", lr, step)
            if self.images_per_s is not None:
                write_scalar("train/images_per_s", self.images_per_s, step)
            if self.staged:
                write_scalar("train/stage", stage.index + 1, step)

    def _stage(self, step: int) -> Any:
        from train import stages as stage_plan

        return stage_plan.at(self.stages, max(step - 1, 0))  # the stage of the last step done

    def _count(self, begin: int, end: int, pixels: bool) -> float:
        """Images (or pixels) the steps [begin, end) train on."""
        total = 0.0
        for s in self.stages:
            steps = max(0, min(end, s.end) - max(begin, s.start))
            total += steps * s.batch_size * (s.crop_size**2 if pixels else 1)
        return total

    def scalars(self, step: int, prefix: str, values: dict[str, float]) -> None:
        with self.writer.as_default(step=step):
            for name, value in values.items():
                write_scalar(f"{prefix}/{name}", value, step)

    def image(self, step: int, name: str, grid: np.ndarray) -> None:
        with self.writer.as_default(step=step):
            write_image(name, grid, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
