"""The cost of `train.loss.adversarial_cap`: GAN step time with and without it, side by side in one process.

The small DeblurGAN of bench_quality (16 filters, 3 blocks, critic 16 filters and 1 update, L1 + adversarial 0.001)
at batch 16 and 96 px crops, float32, on random data; each recipe's compiled `train.fit.loop.train_function`, warmed up,
then timed in interleaved rounds. Prints one JSON object.

    .venv/bin/python benchmarks/bench_gan_cap.py [--steps 20] [--rounds 3] [--batch 16] [--crop 96]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from train.config import Config  # noqa: E402
from train.fit.loop import train_function  # noqa: E402
from train.recipes import make_recipe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=96)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sharp = rng.uniform(-1, 1, (1, args.batch, args.crop, args.crop, 3)).astype(np.float32)
    blur = (0.8 * sharp).astype(np.float32)
    strategy = tf.distribute.get_strategy()
    runs = {}
    for name, cap in (("no_cap", None), ("cap_0.01", 0.01)):
        t = {
            "batch_size": args.batch,
            "crop_size": args.crop,
            "steps": 100_000,
            "mixed_precision": "float32",
            "generator": {"arch": "deblurgan", "filters": 16, "blocks": 3, "dropout": 0.5},
            "critic": {"filters": 16, "updates": 1},
            "loss": {"perceptual": 0.0, "adversarial": 0.001, "adversarial_cap": cap, "pixel": 1.0},
            "optimizer": {"lr": 3e-4, "beta_1": 0.5},
        }
        t["loss"]["perceptual_weights"] = "none"
        recipe = make_recipe(strategy, Config.model_validate({"train": t}).train, "float32")
        iterator = iter(tf.data.Dataset.from_tensors((blur, sharp)).repeat())
        fn = train_function(strategy, recipe)
        fn(iterator, tf.constant(3))  # trace and warm up
        runs[name] = (fn, iterator)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (fn, iterator) in runs.items():
            start = time.perf_counter()
            metrics, _ = fn(iterator, tf.constant(args.steps))
            float(metrics["generator"])
            times[name].append((time.perf_counter() - start) / args.steps)
    best = {name: min(values) for name, values in times.items()}
    print(
        json.dumps(
            {
                "benchmark": "gan_cap",
                "batch": args.batch,
                "crop": args.crop,
                "steps_per_round": args.steps,
                "s_per_step": {name: [round(v, 4) for v in values] for name, values in times.items()},
                "best_s_per_step": {name: round(v, 4) for name, v in best.items()},
                "cap_over_no_cap": round(best["cap_0.01"] / best["no_cap"], 3),
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
