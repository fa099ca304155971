"""Optimizers and learning-rate schedules for `train.optimizer`, and the gradient update every recipe uses.

The rate is a function of the run's step counter (restored from checkpoints), not of an optimizer's own
iteration count: a critic updated 5 times per step follows the same curve, a resumed run continues it, and a
changed setting at resume applies from that step on (nothing about the rate is stored in the checkpoint).
  linear: `lr` until `decay_start`, then linearly to 0 at `train.steps` (DeblurGAN);
  cosine: from `lr` to `min_lr` over `train.steps` (NAFNet's cosine annealing); with `hold_steps`, `lr` is held
  that many steps and the cosine runs over the rest (Restormer: 92k held, then 208k down to 1e-6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from train.config import OptimizerConfig


def schedule_value(o: OptimizerConfig, steps: int, step: float) -> float:
    """The learning rate at `step` of a `steps`-step run (plain numbers: for logs and tests)."""
    if o.schedule == "cosine":
        progress = min(max((step - o.hold_steps) / max(steps - o.hold_steps, 1), 0.0), 1.0)
        return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + math.cos(math.pi * progress))
    if step < o.decay_start or steps <= o.decay_start:
        return o.lr
    return o.lr * max(0.0, (steps - step) / (steps - o.decay_start))


def learning_rate_fn(o: OptimizerConfig, steps: int, step: Any) -> Callable[[], Any]:
    """A no-argument callable (what Keras optimizers accept as `learning_rate`) reading the step variable."""
    import tensorflow as tf

    def rate() -> Any:
        s = tf.cast(step, tf.float32)
        if o.schedule == "cosine":
            held = s - float(o.hold_steps) if o.hold_steps else s  # no hold: the graph of the plain cosine
            progress = tf.clip_by_value(held / float(max(steps - o.hold_steps, 1)), 0.0, 1.0)
            return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + tf.cos(math.pi * progress))
        span = float(max(steps - o.decay_start, 1))
        decayed = o.lr * tf.clip_by_value((float(steps) - s) / span, 0.0, 1.0)
        return tf.where(s < float(o.decay_start), tf.constant(o.lr, tf.float32), decayed)

    return rate


def make_optimizer(o: OptimizerConfig, steps: int, step: Any, loss_scaling: bool, name: str) -> Any:
    """Adam or AdamW (decoupled weight decay, as PyTorch's) on the step-keyed schedule; wrapped in a loss scale
    optimizer under mixed_float16. Gradient clipping is done by `apply` (Keras clips before the cross-replica sum)."""
    import keras

    rate = learning_rate_fn(o, steps, step)
    if o.name == "adamw":
        opt = keras.optimizers.AdamW(
            rate, weight_decay=o.weight_decay, beta_1=o.beta_1, beta_2=o.beta_2, name=name
        )
    else:
        opt = keras.optimizers.Adam(rate, beta_1=o.beta_1, beta_2=o.beta_2, name=name)
    return keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_scaled") if loss_scaling else opt


def apply(optimizer: Any, tape: Any, loss: Any, variables: list[Any], clip_norm: float | None) -> None:
    """Gradients of `loss` (already scaled under loss scaling) applied to `variables`, in a replica context."""
    apply_gradients(optimizer, tape.gradient(loss, variables), variables, clip_norm)


def apply_gradients(optimizer: Any, grads: list[Any], variables: list[Any], clip_norm: float | None) -> None:
    """This replica's part of the gradients (already scaled under loss scaling) applied to `variables`.

    With `clip_norm`, the norm is that of the gradient summed over all replicas (clipping each replica's part
    would depend on the replica count): the sum is taken here, clipped, and handed to the optimizer divided by the
    replica count, since the optimizer sums over replicas again.
    """
    import tensorflow as tf

    if clip_norm is not None:
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        if replicas > 1:
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        # Scaled gradients (mixed_float16) are clipped at the scaled limit: the same as clipping after unscaling.
        scaled = hasattr(optimizer, "dynamic_scale")
        limit = clip_norm * tf.cast(optimizer.dynamic_scale, tf.float32) if scaled else clip_norm
        grads, _ = tf.clip_by_global_norm(grads, limit)
        if replicas > 1:
            grads = [g / replicas for g in grads]
    optimizer.apply_gradients(zip(grads, variables, strict=True))
