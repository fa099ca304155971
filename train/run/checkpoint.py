"""Full training state in RUN/checkpoints (one `tf.train.Checkpoint`), and RUN/run.json describing what it fits.

The checkpoint holds both models, both optimizers, the step, the generator's dropout RNG and the tf.data iterator
position, so a rerun continues at the exact step with the exact next batch. Under MultiWorkerMirroredStrategy
every worker must call save (it can run collectives): non-chief workers write to a scratch dir and delete it.

run.json records the config hash, the dataset fingerprint and the values that fix tensor shapes. On resume, a
change of model shape is refused (the weights would not fit); a change of data, batch, crop or replica layout
keeps the model and optimizer state but starts a fresh data stream (the saved iterator no longer applies). With
`train.stages`, run.json records the stages and train/stages.py decides instead of crop and batch: the steps
already trained keep their stages, and the saved position is that of the checkpoint's stage.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tensorflow as tf

from pipeline.config import config_to_dict
from pipeline.console import log
from pipeline.errors import DataError, UsageError
from train.config import Config
from train.run import rundir
from train.run.rundir import join
from train.run.versions import write_json_atomic
from train.strategy import Cluster

CHECKPOINT_DIR = "checkpoints"
RUN_FILE = "run.json"
KEEP_CHECKPOINTS = 3
DATA_KEYS = ("dataset_sha256", "batch_size", "crop_size", "seed", "skip_corrupt", "replicas", "workers")
STAGE_KEYS = ("batch_size", "crop_size")


def config_sha256(cfg: Config) -> str:
    """sha256 of the canonical JSON of the whole config (sorted keys, no whitespace)."""
    text = json.dumps(config_to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_record(
    cfg: Config, dataset: dict[str, Any], replicas: int, workers: int, has_critic: bool, loss_scaling: bool
) -> dict[str, Any]:
    """What run.json says about this run: config hash and the values resume compatibility depends on."""
    from train import archs
    from train import stages as stage_plan

    t = cfg.train
    g = t.generator
    model: dict[str, Any] = {"generator.arch": g.arch}
    model.update({f"generator.{k}": v for k, v in archs.of(g).shape_keys(g).items()})
    if has_critic:
        model["critic.filters"] = t.critic.filters
    model["loss_scaling"] = loss_scaling
    return {
        "config_sha256": config_sha256(cfg),
        "dataset": dataset,
        "model": model,
        "data": {
            "dataset_sha256": dataset["sha256"],
            "batch_size": t.batch_size,
            "crop_size": t.crop_size,
            "seed": t.seed,
            "skip_corrupt": t.skip_corrupt,
            "replicas": replicas,
            "workers": workers,
            # Progressive training: resume checks the stages as history (train/stages.py), not crop and batch.
            **({"stages": stage_plan.as_record(stage_plan.plan(t))} if t.stages else {}),
        },
        "train": config_to_dict(t),
    }


def read_run_record(run_dir: str | Path) -> dict[str, Any] | None:
    path = join(str(run_dir), RUN_FILE)
    try:
        return json.loads(rundir.read_text(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); move it away to start the run afresh") from None


def compare_runs(old: dict[str, Any], new: dict[str, Any], run_dir: str | Path) -> bool:
    """Refuse model-shape changes; return False (restore without the data iterator) when the data changed.

    A key the old record lacks is not compared (a critic added at resume starts fresh)."""
    for key, now in new["model"].items():
        before = old.get("model", {}).get(key)
        if before is not None and before != now:
            name = "train.mixed_precision (float16 loss scaling)" if key == "loss_scaling" else f"train.{key}"
            raise UsageError(
                f"{name} changed from {before!r} to {now!r} since the checkpoints in {join(str(run_dir), CHECKPOINT_DIR)} "
                f"were written; restore it or use a new train.run_dir"
            )
    staged = bool(old.get("data", {}).get("stages") or new["data"].get("stages"))
    keys = [k for k in DATA_KEYS if not (staged and k in STAGE_KEYS)]  # stages: train/stages.py checks them
    changed = [k for k in keys if old.get("data", {}).get(k) != new["data"][k]]
    if changed:
        log(
            f"warning: {', '.join(changed)} changed since the last checkpoint in {run_dir}: "
            "resuming weights and optimizers with a fresh data stream"
        )
        return False
    return True


def _flatten(data: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}.{key}"))
    return flat


def config_changes(old_train: dict[str, Any], new_train: dict[str, Any]) -> dict[str, list[Any]]:
    """{dotted train key: [old, new]} for every train setting that differs between two run records."""
    before, now = _flatten(old_train, "train"), _flatten(new_train, "train")
    return {
        k: [before.get(k), now.get(k)] for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)
    }


def note_changes(old: dict[str, Any], new: dict[str, Any], step: int) -> dict[str, list[Any]]:
    """At resume: log each train setting changed since the checkpoints were written (old -> new) and carry the
    history into the new run record (`changes`, one entry per resume that changed something)."""
    changes = config_changes(old.get("train", {}), new["train"])
    history = list(old.get("changes", []))
    if changes:
        shown = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())
        log(f"resume at step {step}: changed since the last checkpoint: {shown}")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        history.append({"step": step, "at": stamp, "changed": changes})
    new["changes"] = history
    return changes


@dataclass(frozen=True)
class Start:
    """Where a fit starts: its own checkpoint, another run's version (`train.init_from`), or from scratch."""

    kind: Literal["resume", "init_from", "scratch"]
    path: str | None = None
    notice: str | None = None


def plan_start(checkpoint: str | None, init_from: str | None) -> Start:
    """Own checkpoint first (a resumed run ignores `init_from`, with a notice), then `init_from`, then scratch."""
    if checkpoint:
        notice = (
            f"train.init_from={init_from} is ignored: resuming this run from its own checkpoint {checkpoint}"
            if init_from
            else None
        )
        return Start("resume", checkpoint, notice)
    if init_from:
        return Start("init_from", init_from)
    return Start("scratch")


def holds(path: str, name: str) -> bool:
    """Whether the checkpoint at `path` saved object `name` (e.g. `ema`, switched on after it was written)."""
    return any(key.split("/", 1)[0] == name for key, _ in tf.train.list_variables(path))


class RunCheckpoint:
    """CheckpointManager over RUN/checkpoints with the multi-worker save rule.

    The chief's checkpoint holds everything, its data iterator included. Other workers take part in that save
    (into a scratch dir, deleted after) and keep their own iterator position in RUN/checkpoints/worker-N, since
    each worker reads a different part of the data. `restore_state` can run before the iterator exists (for a
    fresh data stream after a data change); `track(iterator)` then adds it to every save and to `restore`.
    """

    def __init__(self, run_dir: str | Path, cluster: Cluster, objects: dict[str, Any]) -> None:
        self.directory = join(str(run_dir), CHECKPOINT_DIR)
        self.cluster = cluster
        self.objects = objects
        self.write_dir = (
            self.directory if cluster.is_chief else join(self.directory, f".worker-{cluster.index}-scratch")
        )
        self.data_dir = join(self.directory, f"worker-{cluster.index}")
        self.checkpoint: Any = None
        self.manager: Any = None
        self.data_manager: Any = None
        if cluster.is_chief:  # saves cut short by a kill (the run dir is locked)
            for temp in rundir.glob(self.directory, "ckpt-*_temp"):
                rundir.rmtree(temp)

    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def has_data_state(self, step: int) -> bool:
        """Whether this worker's data position at `step` was saved (always, for the chief)."""
        return self.cluster.is_chief or tf.io.gfile.exists(join(self.data_dir, f"data-{step}.index"))

    def track(self, iterator: Any) -> None:
        if self.cluster.is_chief:
            self.checkpoint = tf.train.Checkpoint(**self.objects, iterator=iterator)
        else:
            self.checkpoint = tf.train.Checkpoint(**self.objects)
            data = tf.train.Checkpoint(iterator=iterator)
            self.data_manager = tf.train.CheckpointManager(
                data, self.data_dir, max_to_keep=KEEP_CHECKPOINTS, checkpoint_name="data"
            )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.write_dir, max_to_keep=KEEP_CHECKPOINTS, checkpoint_name="ckpt"
        )

    def restore_state(self, path: str) -> None:
        """Restore models, optimizers, step and RNG, not the data position."""
        status = tf.train.Checkpoint(**self.objects).restore(path)
        _check_matched(status, path)
        status.expect_partial()

    def restore(self, path: str, step: int) -> None:
        """Restore everything, this worker's data position included (after `track`)."""
        if self.cluster.is_chief:
            _check_matched(self.checkpoint.restore(path), path)
            return
        self.restore_state(path)
        data_path = join(self.data_dir, f"data-{step}")
        _check_matched(self.data_manager.checkpoint.restore(data_path), data_path)

    def save(self, step: int) -> str:
        """Every worker calls this; only the chief's model files are kept. A failed write (full disk, read-only
        dir) is a DataError naming the dir, and leaves no temp dir: the last complete checkpoint stays the latest."""
        try:
            path = self.manager.save(checkpoint_number=step)
        except tf.errors.OpError as exc:
            # TF writes into ckpt-N_temp/ and renames the files; a failed save leaves that dir behind.
            for temp in _quietly_glob(self.write_dir, f"ckpt-{step}_temp*"):
                rundir.discard(temp)
            raise DataError(
                f"{self.write_dir}: cannot save the checkpoint for step {step}: {rundir.reason(exc)}"
            ) from None
        if not self.cluster.is_chief:
            rundir.rmtree(self.write_dir)
            self.data_manager.save(checkpoint_number=step)
        return path


def _quietly_glob(directory: str, pattern: str) -> list[str]:
    """`rundir.glob` for error paths: a listing that fails too must not hide the error being reported."""
    try:
        return rundir.glob(directory, pattern)
    except Exception:
        return []


def checkpoint_step(path: str) -> int:
    """The step a checkpoint was saved at (saves are numbered by step: RUN/checkpoints/ckpt-STEP)."""
    return int(path.rsplit("-", 1)[-1])


def _check_matched(status: Any, path: str) -> None:
    try:
        status.assert_existing_objects_matched()
    except AssertionError as exc:
        reason = str(exc).splitlines()[0][:200]
        raise DataError(
            f"{path}: checkpoint does not fit the configured models ({reason}); use a new train.run_dir"
        ) from None


def write_run_record(run_dir: str | Path, record: dict[str, Any]) -> None:
    write_json_atomic(
        join(str(run_dir), RUN_FILE),
        {**record, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )
