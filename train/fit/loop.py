"""The compiled, distributed steps-per-call loop: one `tf.function` call runs up to `n` steps of any recipe.

Per step: take this worker's next batch (stacked per local replica), hand each replica its slice, run the
recipe's replica step on every replica, reduce all metrics across replicas in ONE collective (a collective per
metric costs a launch each across GPUs and workers), update the EMA weights when there are any, count the step.
A non-finite loss stops the call before counting that step, so the caller can name it and keep the last good
checkpoint.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def train_function(
    strategy: Any, recipe: Any, ema: Any = None, first_replica: int = 0, jit_compile: bool = False
) -> Any:
    """`fn(iterator, n) -> (metrics, finite)`.

    `iterator` is this worker's plain tf.data iterator (checkpointable, unlike a distributed iterator) over
    batches stacked per local replica, [local_replicas, per_replica_batch, h, w, 3]; each replica takes its
    slice on its own device. `first_replica` is the global id of this worker's first replica. `jit_compile`
    (`train.jit_compile`) has XLA compile each replica's step (the loop around it reads the iterator, which XLA
    cannot compile); in TF 2.21 it fails for variables mirrored over logical CPU devices.
    """
    names = recipe.metrics

    def to_replicas(stacked: tf.Tensor) -> Any:
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: stacked[ctx.replica_id_in_sync_group - first_replica]
        )

    def one_step(iterator: Any) -> dict[str, tf.Tensor]:
        blur, sharp = next(iterator)
        args = (to_replicas(blur), to_replicas(sharp), recipe.step.read_value())

        def replica_step(*replica_args: Any) -> tf.Tensor:
            parts = recipe.replica_step(*replica_args)
            return tf.stack([tf.cast(parts[k], tf.float32) for k in names])

        # The recipes branch on settings only, never on tensors: autograph's source rewrite of them (and of all
        # they call) would only cost start-up time, several seconds per fit.
        run = tf.autograph.experimental.do_not_convert(replica_step)
        if jit_compile:
            run = tf.function(run, jit_compile=True, autograph=False)
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(run, args=args), axis=None)
        return {k: total[i] for i, k in enumerate(names)}

    @tf.function(reduce_retracing=True)
    def train_steps(iterator: Any, n: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        metrics = {k: tf.constant(0.0) for k in names}
        finite = tf.constant(True)
        for _ in tf.range(n):
            metrics = one_step(iterator)
            finite = tf.reduce_all([tf.math.is_finite(v) for v in metrics.values()])
            if not finite:
                break
            if ema is not None:
                ema.update()
            recipe.step.assign_add(1)
        return metrics, finite

    return train_steps
