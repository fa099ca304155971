"""Learning rate: constant, then linear decay to 0 from `optimizer.decay_start` to `steps` (DeblurGAN's schedule).

Keyed on the optimizer's own step counter (restored from checkpoints), so a resumed run continues the same curve.
The critic's optimizer steps `critic.updates` times per generator step: `per_step` maps its counter back.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def linear_decay(step: float, lr: float, decay_start: int, total_steps: int) -> float:
    """Plain-number version of the schedule (for logs and tests)."""
    if step < decay_start or total_steps <= decay_start:
        return lr
    return lr * max(0.0, (total_steps - step) / (total_steps - decay_start))


@keras.saving.register_keras_serializable(package="gopro_deblur")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`lr` until `decay_start`, then linearly to 0 at `total_steps`; the counter is divided by `per_step`."""

    def __init__(self, lr: float, decay_start: int, total_steps: int, per_step: int = 1) -> None:
        self.lr = float(lr)
        self.decay_start = int(decay_start)
        self.total_steps = int(total_steps)
        self.per_step = int(per_step)

    def __call__(self, iterations: Any) -> Any:
        step = ops.cast(ops.floor_divide(iterations, self.per_step), "float32")
        span = float(max(self.total_steps - self.decay_start, 1))
        frac = ops.clip((float(self.total_steps) - step) / span, 0.0, 1.0)
        decayed = ops.where(step < float(self.decay_start), 1.0, frac)
        return self.lr * decayed

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "decay_start": self.decay_start,
            "total_steps": self.total_steps,
            "per_step": self.per_step,
        }
