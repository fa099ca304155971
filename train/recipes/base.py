"""What every training recipe shares: the generator (any arch), its optimizer, the frozen VGG features, the step.

A recipe owns one replica's step (`replica_step`), the names of the metrics it returns, the objects a checkpoint
must hold, and the learning-rate read-out; the steps-per-call distributed loop (train/fit/loop.py) is the same for
all. The generator runs in its arch's value range; losses and the critic see the canonical [-1, 1] range.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from train import archs
from train.archs.base import CANONICAL_RANGE, to_range
from train.config import TrainConfig
from train.fit import losses
from train.fit.optimizers import make_optimizer


class GeneratorRecipe:
    """Generator, its optimizer, VGG features (when the perceptual loss is on) and the step, in `strategy`."""

    metrics: tuple[str, ...] = ()

    def __init__(self, strategy: tf.distribute.Strategy, t: TrainConfig, policy: str) -> None:
        self.strategy = strategy
        self.cfg = t
        self.arch = archs.of(t.generator)
        self.loss_scaling = policy == "mixed_float16"
        # The global batch losses are averaged over: train.batch_size, or the current stage's (train.stages); read
        # when a step is traced (the trainer traces a new train function per stage).
        self.global_batch = t.batch_size
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.generator = self.arch.build(t.generator)
            self.features = (
                losses.build_feature_extractor(t.loss.perceptual_weights, seed=t.seed)
                if t.loss.perceptual > 0
                else None
            )
            self.generator_optimizer = make_optimizer(
                t.optimizer, t.steps, self.step, self.loss_scaling, "generator_adam"
            )
            # Build optimizer slots now, in scope: created lazily inside a replica they would not be mirrored.
            self.generator_optimizer.build(self.generator.trainable_variables)

    def checkpoint_objects(self) -> dict[str, Any]:
        """Everything a resumed run needs (a dropout RNG state is a non-trainable generator variable)."""
        return {
            "generator": self.generator,
            "generator_rng": list(self.generator.non_trainable_variables),
            "generator_optimizer": self.generator_optimizer,
            "step": self.step,
        }

    def learning_rate(self) -> float:
        """The generator's learning rate now, read from its optimizer (what it applies)."""
        return float(self.generator_optimizer.learning_rate)

    def restore(self, blur: tf.Tensor, training: bool = True) -> tf.Tensor:
        """The generator's output for canonical-range `blur`, in the canonical range."""
        x = to_range(blur, CANONICAL_RANGE, self.arch.input_range)
        y = self.generator(x, training=training)
        return to_range(tf.cast(y, tf.float32), self.arch.input_range, CANONICAL_RANGE)

    def average(self, per_example: tf.Tensor) -> tf.Tensor:
        """Sum over this replica's examples divided by the GLOBAL batch: the same gradients on any replica count."""
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)

    def scaled(self, optimizer: Any, loss: tf.Tensor) -> tf.Tensor:
        return optimizer.scale_loss(loss) if self.loss_scaling else loss

    def replica_step(self, blur: tf.Tensor, sharp: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def describe(self, values: dict[str, float]) -> str:
        """The losses part of a progress line."""
        raise NotImplementedError


def loss_parts(values: dict[str, float], names: tuple[str, ...]) -> str:
    """`perc 0.12 pix 0.03` for the terms among `names` that are on (non-zero)."""
    short = {"perceptual": "perc", "adversarial": "adv", "pixel": "pix", "psnr": "psnr"}
    return " ".join(f"{short.get(k, k)} {values[k]:.4g}" for k in names if values.get(k))
