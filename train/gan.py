"""The DeblurGAN training state (models, optimizers, step) and its fused distributed train function.

One `tf.function` call runs several whole GAN steps (a steps-per-execution loop); each step is, per replica:
  1. restore the batch once with the generator, on a tape kept for the generator update;
  2. `critic.updates` WGAN-GP critic updates against that (detached) restoration (skipped when
     `loss.adversarial` is 0: the critic would not influence anything);
  3. one generator update: perceptual + adversarial (with the updated critic) + pixel loss.
Losses are per-example sums divided by the GLOBAL batch, so gradients are the same on any replica count, and the
gradient-penalty mixing weights come from a stateless RNG keyed on (seed, step, global example index).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from pipeline.config import TrainConfig
from train import losses
from train.models import build_critic, build_generator
from train.schedule import LinearDecay

METRICS = ("generator", "perceptual", "adversarial", "pixel", "critic", "wasserstein", "gp")


def _optimizer(t: TrainConfig, per_step: int, loss_scaling: bool, name: str) -> keras.optimizers.Optimizer:
    o = t.optimizer
    schedule = LinearDecay(o.lr, o.decay_start, t.steps, per_step)
    opt = keras.optimizers.Adam(schedule, beta_1=o.beta_1, beta_2=o.beta_2, name=name)
    return keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_scaled") if loss_scaling else opt


class DeblurGan:
    """Generator, critic, frozen VGG features, both optimizers and the step counter, created in `strategy`."""

    def __init__(self, strategy: tf.distribute.Strategy, t: TrainConfig, policy: str) -> None:
        self.strategy = strategy
        self.cfg = t
        self.loss_scaling = policy == "mixed_float16"
        with strategy.scope():
            g, c = t.generator, t.critic
            self.generator = build_generator(g.filters, g.blocks, g.dropout)
            self.critic = build_critic(c.filters)
            need_features = t.loss.perceptual > 0
            self.features = build_feature_extractor(t) if need_features else None
            self.generator_optimizer = _optimizer(t, 1, self.loss_scaling, "generator_adam")
            self.critic_optimizer = _optimizer(t, c.updates, self.loss_scaling, "critic_adam")
            # Build optimizer slots now, in scope: created lazily inside a replica they would not be mirrored.
            self.generator_optimizer.build(self.generator.trainable_variables)
            self.critic_optimizer.build(self.critic.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._train_fn: Any = None

    def checkpoint_objects(self) -> dict[str, Any]:
        """Everything a resumed run needs (the dropout RNG state is a non-trainable generator variable)."""
        return {
            "generator": self.generator,
            "generator_rng": list(self.generator.non_trainable_variables),
            "critic": self.critic,
            "generator_optimizer": self.generator_optimizer,
            "critic_optimizer": self.critic_optimizer,
            "step": self.step,
        }

    def learning_rate(self) -> float:
        """The generator's learning rate now, read from its optimizer (what it applies, not what the config says)."""
        return float(self.generator_optimizer.learning_rate)

    # ---- one replica's step ----------------------------------------------------------------------------------

    def _apply(self, optimizer: Any, tape: tf.GradientTape, loss: tf.Tensor, variables: list[Any]) -> None:
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    def _replica_step(self, blur: tf.Tensor, sharp: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self.cfg
        gb = t.batch_size
        ctx = tf.distribute.get_replica_context()
        local = tf.shape(blur)[0]
        first = ctx.replica_id_in_sync_group * local
        g_vars = self.generator.trainable_variables
        c_vars = self.critic.trainable_variables

        def average(per_example: tf.Tensor) -> tf.Tensor:
            return tf.nn.compute_average_loss(per_example, global_batch_size=gb)

        def scaled(optimizer: Any, loss: tf.Tensor) -> tf.Tensor:
            return optimizer.scale_loss(loss) if self.loss_scaling else loss

        # Mixing weights for every example of the GLOBAL batch, then this replica's slice: replica-count-proof.
        eps_all = tf.random.stateless_uniform(
            [t.critic.updates, gb], seed=tf.stack([tf.cast(t.seed, tf.int64), step])
        )
        eps = tf.reshape(eps_all[:, first : first + local], [t.critic.updates, -1, 1, 1, 1])

        # 1. Restore once, on a tape that only watches the generator.
        with tf.GradientTape(watch_accessed_variables=False) as g_tape:
            g_tape.watch([v.value for v in g_vars])
            restored = self.generator(blur, training=True)
            with g_tape.stop_recording():
                fake = tf.stop_gradient(restored)
                sharp_features = (
                    self.features(losses.vgg_preprocess(sharp), training=False) if self.features else None
                )
                # 2. Critic updates (WGAN-GP) against the detached restoration (none if it has no say).
                zeros = tf.zeros([local], tf.float32)
                c_parts = {"critic": zeros, "wasserstein": zeros, "gp": zeros}
                for u in range(t.critic.updates if t.loss.adversarial > 0 else 0):
                    with tf.GradientTape() as c_tape:
                        c_parts = losses.critic_loss(
                            self.critic, sharp, fake, eps[u], t.critic.gradient_penalty
                        )
                        c_loss = average(c_parts["critic"])
                        c_scaled = scaled(self.critic_optimizer, c_loss)
                    self._apply(self.critic_optimizer, c_tape, c_scaled, c_vars)
            # 3. Generator update against the updated critic.
            g_parts = losses.generator_loss(
                self.critic, self.features, sharp, sharp_features, restored, t.loss
            )
            g_loss = average(g_parts["generator"])
            g_scaled = scaled(self.generator_optimizer, g_loss)
        self._apply(self.generator_optimizer, g_tape, g_scaled, g_vars)
        return {**{k: average(v) for k, v in g_parts.items()}, **{k: average(v) for k, v in c_parts.items()}}

    # ---- the distributed loop --------------------------------------------------------------------------------

    def train_function(self, first_replica: int = 0) -> Any:
        """`fn(iterator, n) -> (metrics, finite)`: up to `n` steps in one call; stops early at a non-finite loss
        (that step is not counted), so the caller can name the step and keep the last good checkpoint.

        `iterator` is this worker's plain tf.data iterator (checkpointable, unlike a distributed iterator) over
        batches stacked per local replica, [local_replicas, per_replica_batch, h, w, 3]; each replica takes its
        slice on its own device. `first_replica` is the global id of this worker's first replica.
        """
        if self._train_fn is not None:
            return self._train_fn
        strategy = self.strategy

        def to_replicas(stacked: tf.Tensor) -> Any:
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: stacked[ctx.replica_id_in_sync_group - first_replica]
            )

        def one_step(iterator: Any) -> dict[str, tf.Tensor]:
            blur, sharp = next(iterator)
            args = (to_replicas(blur), to_replicas(sharp), self.step.read_value())

            def replica_step(*replica_args: Any) -> tf.Tensor:
                parts = self._replica_step(*replica_args)
                return tf.stack([tf.cast(parts[k], tf.float32) for k in METRICS])

            # One cross-replica reduction of all metrics per step (an all-reduce per metric costs a collective
            # launch each across GPUs and workers).
            total = strategy.reduce(
                tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=args), axis=None
            )
            return {k: total[i] for i, k in enumerate(METRICS)}

        @tf.function(reduce_retracing=True)
        def train_steps(iterator: Any, n: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
            metrics = {k: tf.constant(0.0) for k in METRICS}
            finite = tf.constant(True)
            for _ in tf.range(n):
                metrics = one_step(iterator)
                finite = tf.reduce_all([tf.math.is_finite(v) for v in metrics.values()])
                if not finite:
                    break
                self.step.assign_add(1)
            return metrics, finite

        self._train_fn = train_steps
        return train_steps


def build_feature_extractor(t: TrainConfig) -> keras.Model:
    """The frozen VGG19 feature network for `train.loss.perceptual_weights`."""
    return losses.build_feature_extractor(t.loss.perceptual_weights, seed=t.seed)
