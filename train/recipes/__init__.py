"""Training recipes, chosen by the config: GAN with a critic when `train.loss.adversarial` > 0, else plain
restoration (no critic is built, checkpointed or updated)."""

from __future__ import annotations

from typing import Any

from train.config import TrainConfig


def make_recipe(strategy: Any, t: TrainConfig, policy: str) -> Any:
    """The recipe for `t`, its models and optimizers created in `strategy`."""
    if t.loss.adversarial > 0:
        from train.recipes.gan import GanRecipe

        return GanRecipe(strategy, t, policy)
    from train.recipes.restoration import RestorationRecipe

    return RestorationRecipe(strategy, t, policy)
