"""An exponential moving average (EMA) of the generator's weights, as BasicSR keeps `net_g_ema`.

After every step, `ema = decay * ema + (1 - decay) * weights` for every trainable weight (started from the
generator's weights). The average lives in a second generator built in the strategy's scope, updated per device
with the strategy's `update` (no cross-device traffic: every replica holds the same weights), and saved in the
checkpoint, so a resumed run continues it exactly. Versions, sample grids and validation use the EMA weights
when `train.ema_decay` > 0: they are smoother than the last step's and usually score better.
"""

from __future__ import annotations

from typing import Any


class Ema:
    """The averaged copy of `generator` (built in `strategy.scope()` by the caller's `build`)."""

    def __init__(self, strategy: Any, generator: Any, build: Any, decay: float) -> None:
        self.strategy = strategy
        self.decay = float(decay)
        self.source = generator
        with strategy.scope():
            self.model = build()
        self.start_from_source()

    def start_from_source(self) -> None:
        """Set the average to the generator's current weights (a new run, or EMA switched on at resume)."""
        for average, weight in zip(
            self.model.trainable_variables, self.source.trainable_variables, strict=True
        ):
            average.assign(weight)

    def update(self) -> None:
        """One averaging step, in the cross-replica context of the train function."""
        import tensorflow as tf

        d = self.decay

        def blend(average: Any, weight: Any) -> Any:
            return average.assign(d * average + (1.0 - d) * tf.cast(weight, average.dtype))

        for average, weight in zip(
            self.model.trainable_variables, self.source.trainable_variables, strict=True
        ):
            self.strategy.extended.update(
                _tf_variable(average), blend, args=(_tf_variable(weight),), group=False
            )


def _tf_variable(v: Any) -> Any:
    """The tf.Variable behind a Keras variable (what tf.distribute's update works on)."""
    return getattr(v, "value", v)
