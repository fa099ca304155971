"""`trainctl fit`: distributed training of any generator arch that resumes exactly and publishes versions.

`run(cfg)` wires the pieces: strategy and precision (train.strategy), data (train.fit.data), the recipe (its models,
optimizers and replica step: train.recipes), the steps-per-call loop (train.fit.loop), EMA weights (train.fit.ema),
state, resume and init rules (train.run.checkpoint, train.fit.finetune), and boundary hooks (train.fit.hooks): logs
(train.run.runlog), checkpoints, validation (train.evaluation.validation), versions (train.run.versions) with sample grids
(train.fit.samples). Only the chief writes versions, logs, samples and run.json; every worker takes part in
checkpoint saves. A NaN/inf loss stops the run without saving the bad state.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.console import log
from pipeline.errors import ConfigError, DataError
from train import archs
from train import stages as stage_plan
from train.archs.base import CANONICAL_RANGE, to_range
from train.config import Config
from train.fit.data import DatasetInfo, find_corrupt_shards, make_dataset, read_dataset_info, stack_replicas
from train.fit.hooks import Hook, steps_until_boundary
from train.run import rundir
from train.run.runlock import RunLock
from train.run.signals import OTHER_WORKER, StopFlag, exit_code
from train.strategy import (
    Cluster,
    choose_precision,
    cluster_from_env,
    cpu_has_native_bf16,
    describe,
    global_policy_restored,
    is_multi_worker,
    make_strategy,
    set_precision,
)

# Aim for one tf.function call per ~2 s: few Python round trips, yet prompt signal handling.
SECONDS_PER_CALL = 2.0
MAX_STEPS_PER_CALL = 100


@dataclass
class FitResult:
    """What a fit ended with: the step reached, the training generator, versions written, and why it stopped."""

    step: int
    generator: Any
    versions: list[str] = field(default_factory=list)
    stopped_by: str | None = None
    learning_rate: float | None = None  # the generator optimizer's rate at `step`, as it applies it


def run(cfg: Config) -> FitResult:
    """Train per `cfg.train`; rerunning with the same run_dir resumes from its last checkpoint."""
    t = cfg.train
    info = read_dataset_info(t.data)  # a shards dir without dataset.json is refused before anything starts
    info.split("train")
    crops = [(f"train.stages.{i}.crop_size", st.crop_size) for i, st in enumerate(t.stages or [])]
    for key, crop in crops or [("train.crop_size", t.crop_size)]:
        if crop > info.crop_size:
            raise ConfigError(f"{key}={crop} is larger than the shards' crop_size {info.crop_size}")
    strategy = make_strategy(t.strategy)  # first TF work: MultiWorkerMirrored must exist before other ops
    cluster = cluster_from_env() if is_multi_worker(strategy) else Cluster(1, 0, True)
    run_dir = str(t.run_dir)
    rundir.makedirs(run_dir)
    lock = RunLock(run_dir) if cluster.is_chief else None
    with lock or contextlib.nullcontext(), StopFlag() as stop, global_policy_restored():
        return _Fit(cfg, info, strategy, cluster, run_dir, stop, lock).train()


class _Fit:
    """One fit: built in `__init__`, run by `train`."""

    def __init__(
        self,
        cfg: Config,
        info: DatasetInfo,
        strategy: Any,
        cluster: Cluster,
        run_dir: str,
        stop: StopFlag,
        lock: RunLock | None = None,
    ) -> None:
        import keras
        import tensorflow as tf

        from train.fit.ema import Ema
        from train.recipes import make_recipe
        from train.run import checkpoint as ckpt
        from train.run.runlog import RunLog

        self.tf, self.cfg, self.t, self.info = tf, cfg, cfg.train, info
        self.strategy, self.cluster, self.run_dir, self.stop, self.lock = (
            strategy,
            cluster,
            run_dir,
            stop,
            lock,
        )
        t = self.t
        self.arch = archs.of(t.generator)
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
        self.policy = choose_precision(t.mixed_precision, has_gpu, cpu_has_native_bf16())
        set_precision(self.policy)
        replicas = strategy.num_replicas_in_sync
        batches = [(f"train.stages.{i}.batch_size", st.batch_size) for i, st in enumerate(t.stages or [])]
        for key, batch in batches or [("train.batch_size", t.batch_size)]:
            if batch % replicas:
                raise ConfigError(f"{key}={batch} is not divisible by the {replicas} replicas")
        self.stages = stage_plan.plan(t)
        # Keras initializers and dropout draw from the global seed: fixing it makes a run reproducible.
        keras.utils.set_random_seed(t.seed)
        self.recipe = make_recipe(strategy, t, self.policy)
        self.ema = (
            Ema(strategy, self.recipe.generator, lambda: self.arch.build(t.generator), t.ema_decay)
            if t.ema_decay > 0
            else None
        )
        has_critic = hasattr(self.recipe, "critic")
        self.record = ckpt.run_record(
            cfg, info.fingerprint(), replicas, cluster.workers, has_critic, self.recipe.loss_scaling
        )
        objects = self.recipe.checkpoint_objects()
        if self.ema is not None:
            objects["ema"] = self.ema.model
        self.checkpoints = ckpt.RunCheckpoint(run_dir, cluster, objects)
        latest = self.checkpoints.latest()
        start = ckpt.plan_start(latest, t.init_from)
        if start.notice and cluster.is_chief:
            log(f"notice: {start.notice}")
        old = ckpt.read_run_record(run_dir)
        at_step = ckpt.checkpoint_step(latest) if latest else 0
        same_data = ckpt.compare_runs(old, self.record, run_dir) if latest and old else True
        # Progressive training: the steps already trained keep their stages; the saved data position applies
        # inside a stage unchanged by the new list (at a stage's start its stream begins afresh anyway).
        position = True
        if latest and old and (t.stages or old.get("data", {}).get("stages")):
            old_stages = stage_plan.from_record(old)
            stage_plan.check_resume(old_stages, self.stages, at_step, run_dir)
            position = stage_plan.resumes_position(old_stages, self.stages, at_step)
        changed = ckpt.note_changes(old, self.record, at_step) if latest and old else {}
        saved_position = bool(latest) and self.checkpoints.has_data_state(at_step)
        keep_streams = bool(latest) and same_data and saved_position  # this run's data streams continue
        resume_data = keep_streams and position
        if latest and not resume_data:
            if same_data and not saved_position:
                log(
                    f"warning: no saved data position for worker {cluster.index}; starting a fresh data stream"
                )
            self.checkpoints.restore_state(latest)
        self.record["init_from"] = (old or {}).get("init_from") if latest else None
        if start.kind == "init_from":
            self._init_from(str(start.path))
        # A fresh data stream must not replay the first batches of the run: fold the step into the seed. A resumed
        # stream must be rebuilt with the seed it was created with (run.json keeps it), or crops/shuffles diverge.
        if keep_streams:
            data_seed = int(old.get("data_seed", t.seed)) if old else t.seed
        else:
            data_seed = t.seed if not latest else t.seed + 7919 * int(self.recipe.step.numpy())
        self.record["data_seed"] = data_seed
        self.data_seed = data_seed
        self.local_replicas = replicas // cluster.workers
        self._start_stage(stage_plan.at(self.stages, at_step), announce=False)
        if resume_data:
            self.checkpoints.restore(latest, ckpt.checkpoint_step(latest))
        if latest and self.ema is not None and not ckpt.holds(latest, "ema"):
            log(
                f"notice: train.ema_decay is on but {latest} holds no EMA weights; starting them from the generator"
            )
            self.ema.start_from_source()
        self.resumed_from = latest
        self.last_saved = int(self.recipe.step.numpy()) if latest else None
        if cluster.is_chief and not (latest and old and not changed):
            ckpt.write_run_record(run_dir, self.record)
        staged = self.stages if t.stages else None
        self.runlog = RunLog(run_dir, t.steps, t.batch_size, cluster.is_chief, staged)
        self._export: Any = None  # float32 copy of the weights versions are written from
        self._inference: Any = None  # that copy as inference runs it (TLC), for validation
        self._samples: Any = None
        self._vote: Any = None
        self._validator: Any = None
        self.validation: tuple[int, dict[str, Any]] | None = None
        self.versions: list[str] = []
        self.hooks = [
            Hook("log", t.log_every, self._log),
            Hook("checkpoint", t.checkpoint_every, lambda step, _: self._save(step)),
            Hook("validate", t.validation.every, lambda step, _: self._validate(step)),
            Hook("version", t.version_every, self._version),
        ]

    # ---- start -----------------------------------------------------------------------------------------------

    def _start_stage(self, stage: stage_plan.Stage, announce: bool = True) -> None:
        """The data stream of `stage` (its crop, its global batch, its seed), tracked by the checkpoints; the
        recipe averages losses over the stage's batch (read when the next train function is traced)."""
        t, tf = self.t, self.tf
        replicas = self.strategy.num_replicas_in_sync
        context = tf.distribute.InputContext(self.cluster.workers, self.cluster.index, replicas)
        seed = stage_plan.data_seed(self.data_seed, stage)
        dataset = make_dataset(
            t.data,
            "train",
            stage.batch_size,
            stage.crop_size,
            True,
            context,
            seed,
            t.skip_corrupt,
            info=self.info,
        )
        self.iterator = iter(stack_replicas(dataset, self.local_replicas))
        self.checkpoints.track(self.iterator)
        self.recipe.global_batch = stage.batch_size
        self.stage = stage
        if announce and self.cluster.is_chief:
            log(
                f"fit: {stage.describe(len(self.stages))} begins at step {stage.start}: {stage.crop_size} px crops, "
                f"global batch {stage.batch_size} ({stage.batch_size // replicas} per replica)"
            )

    def _train_size(self, step: int) -> int:
        """The crop the generator trained on last (what meta.json's `train_size` and TLC's window go by)."""
        return stage_plan.at(self.stages, max(step - 1, 0)).crop_size

    def _init_from(self, path: str) -> None:
        """Start the generator (and its EMA) from another run's version; record the lineage."""
        from train.fit.finetune import apply_weights, load_init_weights

        weights, lineage = load_init_weights(path, self.t.generator)
        apply_weights(self.recipe.generator, weights, lineage["path"])
        if self.ema is not None:
            self.ema.start_from_source()
        self.record["init_from"] = lineage
        if self.cluster.is_chief:
            log(f"fit: generator initialized from {lineage['path']} (step {lineage['step']})")

    def _log_start(self, step: int) -> None:
        t, replicas = self.t, self.strategy.num_replicas_in_sync
        where = (
            f"resuming at step {step} from {self.resumed_from}" if self.resumed_from else "starting at step 0"
        )
        if self.cluster.is_chief:
            recipe = "GAN (critic)" if hasattr(self.recipe, "critic") else "restoration (no critic)"
            ema = f", EMA {t.ema_decay}" if self.ema is not None else ""
            batch = self.stage.batch_size
            staged = f" in {self.stage.describe(len(self.stages))}" if t.stages else ""
            log(
                f"fit: {self.arch.name} generator ({self.recipe.generator.count_params():,} parameters), "
                f"{recipe}{ema}; {describe(self.strategy)}, {replicas} replica(s) on {self.cluster.workers} "
                f"worker(s), global batch {batch} ({batch // replicas} per replica), precision "
                f"{self.policy}{', XLA' if t.jit_compile else ''}, {self.info.examples('train')} training crops "
                f"in {t.data}; {where}{staged}, training to step {t.steps}"
            )

    # ---- hooks -----------------------------------------------------------------------------------------------

    def _log(self, step: int, values: dict[str, float]) -> None:
        self.runlog.progress(step, values, self.recipe.learning_rate(), self.recipe.describe(values))

    def _any_worker_stopping(self) -> bool:
        """The stop flag, agreed by all workers (a signal to one worker must stop all, or saves would hang)."""
        flag = self.stop.is_set
        if self.cluster.workers <= 1:
            return flag
        tf, strategy = self.tf, self.strategy
        if self._vote is None:

            @tf.function
            def vote(flag: tf.Tensor) -> tf.Tensor:
                votes = strategy.run(lambda: tf.identity(flag))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

            self._vote = vote
        return bool(self._vote(tf.constant(1 if flag else 0, tf.int32)).numpy() > 0)

    def _save(self, step: int) -> None:
        if self.lock is not None:
            self.lock.verify()  # a remote lock taken over by another fit: stop before writing over its files
        self.checkpoints.save(step)
        self.last_saved = step
        if self.cluster.is_chief:
            from train.run.checkpoint import write_run_record

            write_run_record(self.run_dir, self.record)

    def _exported(self) -> Any:
        """The float32 copy of the weights versions are written from (EMA when on), refreshed."""
        source = self.ema.model if self.ema is not None else self.recipe.generator
        if self._export is None:
            self._export = archs.float32_copy(self.t.generator, source)
        else:
            self._export.set_weights(source.get_weights())
        return self._export

    def _validate(self, step: int) -> dict[str, Any] | None:
        """Score the exported weights on the held-out frames (chief only); logged and kept for the next version."""
        if not self.cluster.is_chief or self.t.validation.every <= 0:
            return None
        if self.validation is not None and self.validation[0] == step:
            return self.validation[1]
        from train.evaluation.validation import Validator, headline

        if self._validator is None:
            self._validator = Validator(self.t.validation)
        model = self._exported()
        train_size = self._train_size(step)
        spec = archs.spec_from_meta({"arch": self.arch.describe(self.t.generator, train_size)})
        if spec.tlc_base() is not None:
            if self._inference is None:
                self._inference = archs.with_tlc(spec, model)
            else:
                self._inference.set_weights(model.get_weights())
            model = self._inference
        result = self._validator(model, spec, step)
        self.validation = (step, result)
        self.runlog.scalars(step, "validation", headline(result))
        log(
            f"validation at step {step} on {result['frames']} {result['split']} frames of {result['src']}: "
            f"PSNR {result['psnr']:.2f} dB vs input {result['psnr_input']:.2f} ({result['psnr_gain']:+.2f} dB), "
            f"SSIM {result['ssim']:.4f}"
        )
        return result

    def _version(self, step: int, values: dict[str, float] | None) -> None:
        if not self.cluster.is_chief:
            return
        from train.fit import samples
        from train.run import scores
        from train.run.checkpoint import config_sha256
        from train.run.versions import write_version

        validation = self._validate(step) if self.t.validation.every > 0 else None
        model = self._exported()
        meta = {
            "step": step,
            "config_sha256": config_sha256(self.cfg),
            "dataset": self.info.fingerprint(),
            "arch": self.arch.describe(self.t.generator, self._train_size(step)),
            "ema": {"decay": self.t.ema_decay} if self.ema is not None else None,
            "init_from": self.record.get("init_from"),
            "metrics": scores.with_score({}, validation)["metrics"] if validation else {},
            "train_losses": values or {},
            "precision": self.policy,
        }
        path = write_version(self.run_dir, model, meta, keep=self.t.keep_versions)
        self.versions.append(path)
        if self._samples is None:
            stride = self.arch.stride(self.t.generator)
            size = self.info.crop_size // stride * stride
            self._samples = samples.validation_crops(self.t.data, self.info, size)
        blur, sharp = self._samples
        x = to_range(blur, CANONICAL_RANGE, self.arch.input_range)
        restored = to_range(model(x, training=False).numpy(), self.arch.input_range, CANONICAL_RANGE)
        grid = samples.sample_grid(blur, restored, sharp)
        rundir.write_png(samples.sample_path(self.run_dir, step), grid)
        self.runlog.image(step, "samples/blur_restored_sharp", grid)
        log(f"version {rundir.name(path)} at step {step}: {path}")

    def _data_error(self, exc: Exception) -> DataError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        bad = find_corrupt_shards(self.info, "train")
        hint = "set train.skip_corrupt=true to skip unreadable records, or re-run `gopro-prep shard`"
        if bad:
            return DataError(f"corrupt shard {bad[0]}; {hint}")
        return DataError(f"{self.t.data}: unreadable training data ({first}); {hint}")

    # ---- the loop ------------------------------------------------------------------------------------------

    def _train_function(self) -> Any:
        """A newly traced steps-per-call function (one per stage: the batch shape and loss average change)."""
        from train.fit.loop import train_function

        first = self.cluster.index * self.local_replicas
        jit = self.t.jit_compile
        return train_function(self.strategy, self.recipe, self.ema, first_replica=first, jit_compile=jit)

    def _run_steps(self, fn: Any, n: int) -> tuple[int, dict[str, float]]:
        """Run up to `n` steps in one call; map data errors to DataError and stop on a non-finite loss."""
        tf = self.tf
        try:
            metrics, finite = fn(self.iterator, tf.constant(n, tf.int32))
        except (tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as exc:
            raise self._data_error(exc) from None  # corrupt, missing or unreadable shard: name the file
        except tf.errors.InvalidArgumentError as exc:  # a record that parses but does not decode
            if "GetNext" not in str(exc) and "decode" not in str(exc).lower():
                raise
            raise self._data_error(exc) from None
        except tf.errors.OutOfRangeError:
            raise DataError(f"{self.t.data}: no readable training examples left") from None
        step = int(self.recipe.step.numpy())
        values = {k: float(v) for k, v in metrics.items()}
        if not bool(finite):
            bad = ", ".join(f"{k}={v:.4g}" for k, v in values.items() if not abs(v) < float("inf"))
            kept = (
                f"the last good checkpoint is step {self.last_saved} in {self.checkpoints.directory}"
                if self.last_saved is not None
                else "no checkpoint was saved"
            )
            raise DataError(
                f"step {step + 1}: loss is not finite ({bad}); training stopped without saving, {kept} "
                "(lower train.optimizer.lr or check the data)"
            )
        return step, values

    def _finished_already(self, step: int) -> FitResult:
        """Rerun of a completed run: make sure the final step has a version, train nothing."""
        from train.run.versions import list_versions

        existing = list_versions(self.run_dir)
        if self.cluster.is_chief and (not existing or existing[-1].step != step):
            self._version(step, None)
        log(f"fit: already at step {step} of {self.t.steps}; nothing to train (raise train.steps to go on)")
        return FitResult(step, self.recipe.generator, self.versions, None, self.recipe.learning_rate())

    def train(self) -> FitResult:
        t = self.t
        step = int(self.recipe.step.numpy())
        self._log_start(step)
        try:
            if step >= t.steps:
                return self._finished_already(step)
            fn = self._train_function()
            cap = 1  # steps per call: grows to ~SECONDS_PER_CALL of work once a step has been timed
            self.runlog.start(step)
            while step < t.steps and not self._any_worker_stopping():
                began = time.perf_counter()
                n = min(steps_until_boundary(step, self.hooks, t.steps, cap), self.stage.end - step)
                new_step, values = self._run_steps(fn, n)
                self.runlog.call_done(new_step)  # the first call's tracing does not count in speed or ETA
                per_call = SECONDS_PER_CALL * (new_step - step) / (time.perf_counter() - began)
                cap, step = max(1, min(MAX_STEPS_PER_CALL, int(per_call))), new_step
                for hook in self.hooks:
                    if hook.due(step, t.steps):
                        hook.run(step, values)
                if step == self.stage.end and step < t.steps:  # the next stage: its crops, its batch
                    self._start_stage(stage_plan.at(self.stages, step))
                    fn, cap = self._train_function(), 1
            stopped_by = self.stop.signal_name or (OTHER_WORKER if step < t.steps else None)
            if stopped_by:
                if self.last_saved != step:
                    self._save(step)
                if self.cluster.is_chief:
                    log(
                        f"fit: stopped by {stopped_by} at step {step}; checkpoint saved in "
                        f"{self.checkpoints.directory}; rerun `trainctl fit` to resume (exit {exit_code(stopped_by)})"
                    )
            elif self.cluster.is_chief:
                log(
                    f"fit: done at step {step}; generator versions in {rundir.join(self.run_dir, 'generator')}"
                )
            return FitResult(
                step, self.recipe.generator, self.versions, stopped_by, self.recipe.learning_rate()
            )
        finally:
            self.runlog.close()
