"""Restormer train-step speed: `trainctl fit`'s compiled distributed loop vs Keras `model.fit`, same model and recipe.

The comparison of benchmarks/bench_nafnet_fit.py for the small Restormer (dim 16, one block per level, one
refinement block, heads [1, 2, 4, 8]) with the reference recipe: L1 loss, AdamW 3e-4 (weight decay 1e-4, betas
0.9/0.999), the rate on the held-then-cosine schedule, gradient clipping at global norm 0.01 (Keras: the
optimizer's `global_clipnorm`; ours: `train.optimizer.clip_norm`). Same shards, crop, batch and precision on both
sides. Goal: ours >= 1.0x model.fit. Prints one JSON object.

    .venv/bin/python benchmarks/bench_restormer_fit.py [--crop 96] [--batch 8] [--steps 30] [--repeats 1]
"""

from __future__ import annotations

import copy

from bench_nafnet_fit import measure
from quality_configs import RESTORMER_SMALL

RECIPE = copy.deepcopy(RESTORMER_SMALL)
RECIPE["optimizer"]["hold_steps"] = 3066  # 92/300 of the 10k steps both loops are configured for

if __name__ == "__main__":
    measure("restormer", RECIPE, __doc__)
