"""GAN training with a WGAN-GP critic (DeblurGAN): chosen when `train.loss.adversarial` > 0.

Per replica, one step:
  1. restore the batch once with the generator, on a tape kept for the generator update;
  2. `critic.updates` WGAN-GP critic updates against that (detached) restoration;
  3. one generator update: restoration losses + adversarial (with the updated critic).
The gradient-penalty mixing weights come from a stateless RNG keyed on (seed, step, global example index), so a
step is the same on any replica count.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from pipeline.config import TrainConfig
from train import losses
from train.archs.critic import build_critic
from train.optimizers import apply, make_optimizer
from train.recipes.base import GeneratorRecipe, loss_parts


class GanRecipe(GeneratorRecipe):
    metrics = (
        "generator",
        "perceptual",
        "adversarial",
        "pixel",
        "psnr",
        "critic",
        "wasserstein",
        "gp",
        "drift",
    )

    def __init__(self, strategy: tf.distribute.Strategy, t: TrainConfig, policy: str) -> None:
        super().__init__(strategy, t, policy)
        with strategy.scope():
            self.critic = build_critic(t.critic.filters)
            self.critic_optimizer = make_optimizer(
                t.optimizer, t.steps, self.step, self.loss_scaling, "critic_adam"
            )
            self.critic_optimizer.build(self.critic.trainable_variables)

    def checkpoint_objects(self) -> dict[str, Any]:
        return {
            **super().checkpoint_objects(),
            "critic": self.critic,
            "critic_optimizer": self.critic_optimizer,
        }

    def replica_step(self, blur: tf.Tensor, sharp: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self.cfg
        gb = t.batch_size
        ctx = tf.distribute.get_replica_context()
        local = tf.shape(blur)[0]
        first = ctx.replica_id_in_sync_group * local
        g_vars = self.generator.trainable_variables
        c_vars = self.critic.trainable_variables
        # Mixing weights for every example of the GLOBAL batch, then this replica's slice: replica-count-proof.
        eps_all = tf.random.stateless_uniform(
            [t.critic.updates, gb], seed=tf.stack([tf.cast(t.seed, tf.int64), step])
        )
        eps = tf.reshape(eps_all[:, first : first + local], [t.critic.updates, -1, 1, 1, 1])

        # 1. Restore once, on a tape that only watches the generator.
        with tf.GradientTape(watch_accessed_variables=False) as g_tape:
            g_tape.watch([v.value for v in g_vars])
            restored = self.restore(blur)
            with g_tape.stop_recording():
                fake = tf.stop_gradient(restored)
                sharp_features = (
                    self.features(losses.vgg_preprocess(sharp), training=False) if self.features else None
                )
                # 2. Critic updates (WGAN-GP) against the detached restoration.
                for u in range(t.critic.updates):
                    with tf.GradientTape() as c_tape:
                        c_parts = losses.critic_loss(
                            self.critic, sharp, fake, eps[u], t.critic.gradient_penalty, t.critic.drift
                        )
                        c_loss = self.scaled(self.critic_optimizer, self.average(c_parts["critic"]))
                    apply(self.critic_optimizer, c_tape, c_loss, c_vars, t.optimizer.clip_norm)
            # 3. Generator update against the updated critic.
            g_parts = losses.restoration_loss(self.features, sharp, sharp_features, restored, t.loss)
            g_parts["adversarial"] = losses.adversarial_loss(self.critic, restored)
            g_parts["generator"] = g_parts["generator"] + t.loss.adversarial * g_parts["adversarial"]
            g_loss = self.scaled(self.generator_optimizer, self.average(g_parts["generator"]))
        apply(self.generator_optimizer, g_tape, g_loss, g_vars, t.optimizer.clip_norm)
        return {k: self.average(v) for k, v in {**g_parts, **c_parts}.items()}

    def describe(self, values: dict[str, float]) -> str:
        generator = ("perceptual", "adversarial", "pixel", "psnr")
        return (
            f"G {values['generator']:.4g} ({loss_parts(values, generator)})  "
            f"D {values['critic']:.4g} (w {values['wasserstein']:.4g} gp {values['gp']:.4g} "
            f"drift {values['drift']:.4g})"
        )
