"""Plain restoration training (no critic): the generator alone, on perceptual, L1 and PSNR losses.

What NAFNet trains with (`loss.psnr: 1`, everything else 0), and what DeblurGAN becomes with
`loss.adversarial: 0`. Per replica, one step: restore the batch, weigh the losses, one optimizer update.
"""

from __future__ import annotations

import tensorflow as tf

from train.fit import losses
from train.fit.optimizers import apply
from train.recipes.base import GeneratorRecipe, loss_parts


class RestorationRecipe(GeneratorRecipe):
    metrics = ("generator", "perceptual", "pixel", "psnr")

    def replica_step(self, blur: tf.Tensor, sharp: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        t = self.cfg
        g_vars = self.generator.trainable_variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([v.value for v in g_vars])
            restored = self.restore(blur)
            with tape.stop_recording():
                sharp_features = (
                    self.features(losses.vgg_preprocess(sharp), training=False) if self.features else None
                )
            parts = losses.restoration_loss(self.features, sharp, sharp_features, restored, t.loss)
            loss = self.scaled(self.generator_optimizer, self.average(parts["generator"]))
        apply(self.generator_optimizer, tape, loss, g_vars, t.optimizer.clip_norm)
        return {k: self.average(v) for k, v in parts.items()}

    def describe(self, values: dict[str, float]) -> str:
        return f"loss {values['generator']:.4g} ({loss_parts(values, self.metrics[1:])})"
