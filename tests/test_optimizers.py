"""train.fit.optimizers: schedules on the step counter (graph and plain-number versions agree), AdamW's decoupled
weight decay, and gradient clipping by the global norm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from train.config import OptimizerConfig
from train.fit.optimizers import apply, learning_rate_fn, make_optimizer, schedule_value


@pytest.mark.parametrize(
    "o",
    [
        OptimizerConfig(lr=1e-3, decay_start=40),
        OptimizerConfig(name="adamw", lr=1e-3, schedule="cosine", min_lr=1e-7, weight_decay=1e-3),
        OptimizerConfig(name="adamw", lr=3e-4, schedule="cosine", min_lr=1e-6, hold_steps=30),
    ],
    ids=["linear", "cosine", "cosine-held"],
)
def test_graph_schedule_matches_the_plain_numbers(o: OptimizerConfig) -> None:
    step = tf.Variable(0, dtype=tf.int64)
    rate = learning_rate_fn(o, 100, step)
    for s in (0, 10, 40, 41, 70, 99, 100, 150):
        step.assign(s)
        assert float(rate()) == pytest.approx(schedule_value(o, 100, s), rel=1e-5, abs=1e-9)  # float32


def test_schedule_values() -> None:
    linear = OptimizerConfig(lr=1e-3, decay_start=50)
    assert [schedule_value(linear, 100, s) for s in (0, 50, 75, 100)] == pytest.approx(
        [1e-3, 1e-3, 5e-4, 0.0]
    )
    assert schedule_value(OptimizerConfig(lr=0.1, decay_start=1000), 300, 500) == 0.1  # decay never starts
    cosine = OptimizerConfig(name="adamw", lr=1e-3, schedule="cosine", min_lr=1e-7)
    assert schedule_value(cosine, 200, 0) == pytest.approx(1e-3)
    assert schedule_value(cosine, 200, 100) == pytest.approx(1e-7 + 0.5 * (1e-3 - 1e-7))
    assert schedule_value(cosine, 200, 200) == pytest.approx(1e-7)
    assert schedule_value(cosine, 200, 50) == pytest.approx(
        1e-7 + 0.5 * (1e-3 - 1e-7) * (1 + math.cos(math.pi / 4))
    )


def test_held_cosine_holds_the_rate_then_anneals_over_the_rest() -> None:
    """Restormer's schedule: 3e-4 for 92k steps, then cosine to 1e-6 at 300k (here scaled to 100 steps)."""
    held = OptimizerConfig(name="adamw", lr=3e-4, schedule="cosine", min_lr=1e-6, hold_steps=30)
    assert [schedule_value(held, 100, s) for s in (0, 15, 30)] == [3e-4, 3e-4, 3e-4]
    assert schedule_value(held, 100, 65) == pytest.approx(1e-6 + 0.5 * (3e-4 - 1e-6))  # halfway through 70
    assert schedule_value(held, 100, 100) == pytest.approx(1e-6)
    plain = held.model_copy(update={"hold_steps": 0})
    assert schedule_value(plain, 100, 50) == pytest.approx(1e-6 + 0.5 * (3e-4 - 1e-6))


def test_adamw_decays_weights_by_lr_times_decay_and_adam_does_not() -> None:
    """A zero gradient moves nothing under Adam; AdamW still shrinks each weight by lr * weight_decay."""
    step = tf.Variable(0, dtype=tf.int64)
    for name, decay, want in (("adam", 0.0, 2.0), ("adamw", 0.1, 2.0 * (1 - 1e-2 * 0.1))):
        v = tf.Variable([2.0])
        opt = make_optimizer(OptimizerConfig(name=name, lr=1e-2, weight_decay=decay), 10, step, False, name)
        opt.build([v])
        opt.apply_gradients([(tf.constant([0.0]), v)])
        assert float(v[0]) == pytest.approx(want, rel=1e-6)


def test_clip_norm_scales_the_whole_gradient_to_the_limit() -> None:
    a, b = tf.Variable([0.0, 0.0]), tf.Variable([0.0])
    # Plain SGD-like check through Adam is awkward; measure what reaches the optimizer instead.
    seen = {}

    class Probe:
        def apply_gradients(self, pairs: object) -> None:
            seen["grads"] = [g.numpy() for g, _ in pairs]  # type: ignore[attr-defined]

    with tf.GradientTape() as tape:
        loss = 3.0 * a[0] + 4.0 * a[1] + 12.0 * b[0]  # gradient (3, 4, 12): global norm 13
    apply(Probe(), tape, loss, [a, b], clip_norm=1.3)
    np.testing.assert_allclose(np.concatenate(seen["grads"]), [0.3, 0.4, 1.2], rtol=1e-6)


def test_rate_follows_the_step_not_the_optimizers_own_update_count() -> None:
    """A critic updated 5 times per step sees the same rate as the generator (its iterations count 5x faster)."""
    o = OptimizerConfig(lr=1e-3, decay_start=0)
    step = tf.Variable(0, dtype=tf.int64)
    generator, critic = (make_optimizer(o, 100, step, False, n) for n in ("g", "c"))
    v, w = tf.Variable([1.0]), tf.Variable([1.0])
    generator.build([v])
    critic.build([w])
    for s in range(3):
        step.assign(s * 10)
        generator.apply_gradients([(tf.constant([0.1]), v)])
        for _ in range(5):
            critic.apply_gradients([(tf.constant([0.1]), w)])
        assert (
            float(critic.learning_rate)
            == float(generator.learning_rate)
            == pytest.approx(1e-3 * (1 - s / 10))
        )
    assert int(critic.iterations) == 5 * int(generator.iterations)
