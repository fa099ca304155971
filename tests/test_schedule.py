"""train.schedule: constant then linear decay to 0, keyed on the optimizer counter (critic: per generator step)."""

from __future__ import annotations

import pytest
import tensorflow as tf

from train.schedule import LinearDecay, linear_decay


def test_plain_schedule_values() -> None:
    assert [linear_decay(s, 1.0, 50, 100) for s in (0, 49, 50, 75, 100, 120)] == [
        1.0,
        1.0,
        1.0,
        0.5,
        0.0,
        0.0,
    ]
    assert linear_decay(500, 0.1, 1000, 300) == 0.1  # decay never starts before the end


@pytest.mark.parametrize("step", [0, 10, 50, 60, 99, 100])
def test_keras_schedule_matches_and_divides_the_critic_counter(step: int) -> None:
    generator = LinearDecay(2e-4, 50, 100)
    critic = LinearDecay(2e-4, 50, 100, per_step=5)
    expect = linear_decay(step, 2e-4, 50, 100)
    assert float(generator(tf.constant(step, tf.int64))) == pytest.approx(expect, rel=1e-6, abs=1e-12)
    assert float(critic(tf.constant(step * 5 + 4, tf.int64))) == pytest.approx(expect, rel=1e-6, abs=1e-12)
    assert LinearDecay(**critic.get_config()).per_step == 5
