"""Progressive training's stages (`train.stages`): which crop and global batch each step trains on, and what a
changed stage list at resume may change.

A run without `train.stages` is one stage of `train.steps` steps on `train.crop_size` crops, `train.batch_size` per
step. Stage k covers steps [start, end): its data stream is built when it begins, with a seed of its own (stage 0
keeps the run's seed, so the one-stage case is the plain run), and the data position saved in a checkpoint is that
stream's. At resume the steps already trained are history: a stage list that describes them differently is refused
(it could not apply); what lies after the checkpoint may change, and is named. Pure Python: no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import UsageError

STAGE_SEED = 104_729  # stage k's data stream: the run's data seed + k * STAGE_SEED


@dataclass(frozen=True)
class Stage:
    index: int  # 0-based
    start: int  # first step (the step counter's value when the stage begins)
    end: int  # one past the last step
    crop_size: int
    batch_size: int  # global

    def describe(self, count: int) -> str:
        return f"stage {self.index + 1}/{count} (steps {self.start}-{self.end}, {self.crop_size} px, batch {self.batch_size})"

    def as_dict(self) -> dict[str, int]:
        return {"steps": self.end - self.start, "crop_size": self.crop_size, "batch_size": self.batch_size}


def plan(t: Any) -> list[Stage]:
    """The stages of train config `t` (one stage when `t.stages` is not set)."""
    rows = (
        [(st.steps, st.crop_size, st.batch_size) for st in t.stages]
        if t.stages
        else [(t.steps, t.crop_size, t.batch_size)]
    )
    return from_rows(rows)


def from_rows(rows: list[tuple[int, int, int]]) -> list[Stage]:
    stages, start = [], 0
    for i, (steps, crop, batch) in enumerate(rows):
        stages.append(Stage(i, start, start + int(steps), int(crop), int(batch)))
        start += int(steps)
    return stages


def from_record(record: dict[str, Any]) -> list[Stage]:
    """The stages a run.json describes: its `data.stages`, or the one stage of a run recorded without them."""
    data, train = record.get("data", {}), record.get("train", {})
    if data.get("stages"):
        return from_rows([(s["steps"], s["crop_size"], s["batch_size"]) for s in data["stages"]])
    steps = int(train.get("steps", 0))
    return from_rows([(steps, int(data.get("crop_size", 0)), int(data.get("batch_size", 0)))])


def at(stages: list[Stage], step: int) -> Stage:
    """The stage the next step (`step`, 0-based count of steps done) runs in; the last one at or past the end."""
    for stage in stages:
        if step < stage.end:
            return stage
    return stages[-1]


def data_seed(seed: int, stage: Stage) -> int:
    return seed + STAGE_SEED * stage.index


def history(stages: list[Stage], step: int) -> list[tuple[int, int, int, int]]:
    """(start, end, crop, batch) of the stages' parts before `step`: what the steps already trained ran on."""
    return [(s.start, min(s.end, step), s.crop_size, s.batch_size) for s in stages if s.start < step]


def check_resume(old: list[Stage], new: list[Stage], step: int, run_dir: str) -> None:
    """Refuse a stage list that rewrites the steps before `step` (already trained); UsageError naming the first
    stage that differs."""
    before, now = history(old, step), history(new, step)
    if before == now:
        return
    for i in range(max(len(before), len(now))):
        a = before[i] if i < len(before) else None
        b = now[i] if i < len(now) else None
        if a != b:
            break

    def show(part: tuple[int, int, int, int] | None) -> str:
        if part is None:
            return "none"
        start, end, crop, batch = part
        return f"steps {start}-{end} at {crop} px, batch {batch}"

    raise UsageError(
        f"train.stages: stage {i + 1} trained {show(a)} before the checkpoint at step {step} in {run_dir}, but "
        f"the stages now say {show(b)}; the steps already trained cannot change: keep the stages up to step "
        f"{step} (a stage may end there and a new one begin) or use a new train.run_dir"
    )


def resumes_position(old: list[Stage], new: list[Stage], step: int) -> bool:
    """Whether the data position saved at `step` continues in the new list: the step lies inside a stage (not at
    its start, where a stream begins afresh anyway) that is the same stage in both lists."""
    a, b = at(old, step), at(new, step)
    same = (a.index, a.start, a.crop_size, a.batch_size) == (b.index, b.start, b.crop_size, b.batch_size)
    return same and b.start < step


def as_record(stages: list[Stage]) -> list[dict[str, int]]:
    return [s.as_dict() for s in stages]
