"""GAN training with a WGAN-GP critic (DeblurGAN): chosen when `train.loss.adversarial` > 0.

Per replica, one step:
  1. restore the batch once with the generator, on a tape kept for the generator update;
  2. `critic.updates` WGAN-GP critic updates against that (detached) restoration;
  3. one generator update: restoration losses + adversarial (with the updated critic). The two terms' gradients
     on the restored image are taken apart, so the adversarial weight can be held under `loss.adversarial_cap`
     times the restoration losses' gradient at the generator's output layer (VQGAN's adaptive weight, used as a
     ceiling), then go through the generator in one backward pass. The two output-kernel gradients cost two
     more filter-gradient convolutions: without a cap they are not computed and the share is not logged.
The gradient-penalty mixing weights come from a stateless RNG keyed on (seed, step, global example index), so a
step is the same on any replica count.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from train.archs.critic import build_critic
from train.config import TrainConfig
from train.fit import losses
from train.fit.optimizers import apply, apply_gradients, make_optimizer
from train.recipes.base import GeneratorRecipe, loss_parts


def output_kernel(model: keras.Model) -> Any:
    """The kernel of the model's last layer that has one: its output convolution, where the reconstruction and
    adversarial gradients are compared (VQGAN's `last_layer`)."""
    for layer in reversed(model.layers):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.trainable:
            return kernel
    raise ValueError(f"generator {model.name!r} has no layer with a trainable kernel")


def adversarial_weight(
    weight: float, cap: float, rec_norm: tf.Tensor, adv_norm: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """`(applied weight, adversarial share)`: the weight is `weight`, lowered where needed so the weighted
    adversarial gradient at the output layer is at most `cap` times the restoration gradient there; the share is
    the ratio of the two gradient norms with the applied weight (logged: what the cap bounds)."""
    tiny = 1e-12
    applied = tf.minimum(tf.constant(weight, tf.float32), cap * rec_norm / (adv_norm + tiny))
    return applied, applied * adv_norm / (rec_norm + tiny)


class GanRecipe(GeneratorRecipe):
    metrics = (
        "generator",
        "perceptual",
        "adversarial",
        "adversarial_share",
        "pixel",
        "psnr",
        "critic",
        "wasserstein",
        "gp",
        "drift",
    )

    def __init__(self, strategy: tf.distribute.Strategy, t: TrainConfig, policy: str) -> None:
        super().__init__(strategy, t, policy)
        # The cap compares the adversarial gradient with the other terms': with none of those, there is no cap.
        restoring = t.loss.perceptual + t.loss.pixel + t.loss.psnr > 0
        self.cap = t.loss.adversarial_cap if restoring else None
        if self.cap is None:
            self.metrics = tuple(name for name in self.metrics if name != "adversarial_share")
        with strategy.scope():
            self.critic = build_critic(t.critic.filters)
            self.critic_optimizer = make_optimizer(
                t.optimizer, t.steps, self.step, self.loss_scaling, "critic_adam"
            )
            self.critic_optimizer.build(self.critic.trainable_variables)
        self.output_kernel = output_kernel(self.generator)

    def checkpoint_objects(self) -> dict[str, Any]:
        return {
            **super().checkpoint_objects(),
            "critic": self.critic,
            "critic_optimizer": self.critic_optimizer,
        }

    def replica_step(self, blur: tf.Tensor, sharp: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self.cfg
        gb = self.global_batch
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

        # 1. Restore once, on a tape that only watches the generator (persistent with a cap: read three times).
        with tf.GradientTape(persistent=self.cap is not None, watch_accessed_variables=False) as g_tape:
            g_tape.watch([v.value for v in g_vars])
            restored = self.restore(blur)
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
        # 3. Generator update against the updated critic: each term's gradient on the restored image, ...
        with tf.GradientTape(persistent=True, watch_accessed_variables=False) as o_tape:
            o_tape.watch(restored)
            g_parts = losses.restoration_loss(self.features, sharp, sharp_features, restored, t.loss)
            g_parts["adversarial"] = losses.adversarial_loss(self.critic, restored)
            rec_loss, adv_loss = self.average(g_parts["generator"]), self.average(g_parts["adversarial"])
        rec_out = o_tape.gradient(rec_loss, restored, unconnected_gradients="zero")
        adv_out = o_tape.gradient(adv_loss, restored, unconnected_gradients="zero")
        del o_tape
        weight = tf.constant(t.loss.adversarial, tf.float32)
        if self.cap is not None:
            # ... their global gradients on the output kernel (summed over replicas: the same on any count) ...
            kernel = [self.output_kernel]
            rec_k = g_tape.gradient(restored, kernel, output_gradients=rec_out)[0]
            adv_k = g_tape.gradient(restored, kernel, output_gradients=adv_out)[0]
            if ctx.num_replicas_in_sync > 1:
                rec_k, adv_k = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [rec_k, adv_k])
            weight, share = adversarial_weight(t.loss.adversarial, self.cap, tf.norm(rec_k), tf.norm(adv_k))
        # ... and one backward pass through the generator with the weighted sum.
        out = rec_out + weight * adv_out
        if self.loss_scaling:
            out = out * tf.cast(self.generator_optimizer.dynamic_scale, out.dtype)
        grads = g_tape.gradient(restored, g_vars, output_gradients=out)
        del g_tape
        apply_gradients(self.generator_optimizer, grads, g_vars, t.optimizer.clip_norm)
        g_parts["generator"] = g_parts["generator"] + weight * g_parts["adversarial"]
        # A global scalar as a per-example value: averaged over the global batch and summed over replicas, it is
        # itself again.
        if self.cap is not None:
            g_parts["adversarial_share"] = tf.fill([local], share)
        return {k: self.average(v) for k, v in {**g_parts, **c_parts}.items()}

    def describe(self, values: dict[str, float]) -> str:
        generator = ("perceptual", "adversarial", "pixel", "psnr")
        share = f" share {values['adversarial_share']:.3g}" if "adversarial_share" in values else ""
        return (
            f"G {values['generator']:.4g} ({loss_parts(values, generator)}{share})  "
            f"D {values['critic']:.4g} (w {values['wasserstein']:.4g} gp {values['gp']:.4g} "
            f"drift {values['drift']:.4g})"
        )
