"""NAFNet train-step speed: `trainctl fit`'s compiled distributed loop vs Keras `model.fit`, same model and recipe.

Both train the same NAFNet (width 16, one block per level, 4 levels) with NAFNet's recipe: PSNR loss, AdamW
(lr 1e-3, weight decay 1e-3, betas 0.9/0.9), cosine schedule, on the same shards, crop and batch, in the same
precision (`auto`: bfloat16 on CPUs with native bf16, mixed_float16 on GPUs; also float32). Ours is the recipe's
replica step inside the steps-per-call `tf.function` the trainer runs; Keras is `model.compile` (its defaults,
`jit_compile="auto"`) + `model.fit` over the same tf.data batches mapped to NAFNet's [0, 1] range.
Goal: ours >= 1.0x model.fit. Prints one JSON object. benchmarks/bench_restormer_fit.py runs the same comparison
for the small Restormer (`measure(RECIPE, ...)` takes any arch's generator, loss and optimizer sections).

    .venv/bin/python benchmarks/bench_nafnet_fit.py [--crop 96] [--batch 8] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from quality_configs import NAFNET_SMALL  # noqa: E402
from shards_fixture import write_shards  # noqa: E402

from train import archs, strategy  # noqa: E402
from train.config import Config  # noqa: E402
from train.fit import losses  # noqa: E402
from train.fit.data import make_dataset, stack_replicas  # noqa: E402
from train.fit.loop import train_function  # noqa: E402
from train.fit.optimizers import learning_rate_fn  # noqa: E402
from train.recipes import make_recipe  # noqa: E402


def config(recipe: dict, shards: Path, args: argparse.Namespace) -> Config:
    """A train section with `recipe`'s generator, loss and optimizer (hold_steps kept below the 10k steps)."""
    return Config.model_validate(
        {
            "train": {
                "data": str(shards),
                "batch_size": args.batch,
                "crop_size": args.crop,
                "steps": 10_000,
                **{k: recipe[k] for k in ("generator", "loss", "optimizer")},
            }
        }
    )


def start(recipe: dict, shards: Path, args: argparse.Namespace, policy: str) -> Any:
    """A fresh session in `policy` with the seed fixed; the train section of `recipe`."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    strategy.set_precision(policy)
    return config(recipe, shards, args).train


def ours_side(t: Any, policy: str) -> tuple[Any, Any]:
    """The trainer's compiled steps-per-call function for `t` and its input iterator, traced and warmed up."""
    dist = tf.distribute.get_strategy()
    iterator = iter(stack_replicas(make_dataset(t.data, "train", t.batch_size, t.crop_size, True, seed=0), 1))
    fn = train_function(dist, make_recipe(dist, t, policy))
    fn(iterator, tf.constant(3))  # trace + warm up
    return fn, iterator


def keras_side(t: Any, policy: str) -> tuple[Any, Any]:
    """The same generator, loss and optimizer for Keras: the compiled model and its tf.data batches on [0, 1]."""
    model = archs.build(t.generator)
    step = tf.Variable(0, dtype=tf.int64)  # the same cosine curve (fit's own iteration count drives it here)
    o = t.optimizer
    rate = learning_rate_fn(o, t.steps, step)
    optimizer = keras.optimizers.AdamW(
        rate, weight_decay=o.weight_decay, beta_1=o.beta_1, beta_2=o.beta_2, global_clipnorm=o.clip_norm
    )
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)

    def loss(sharp01: tf.Tensor, restored01: tf.Tensor) -> tf.Tensor:
        """The recipe's loss (train.loss weights) on the canonical range, as the trainer computes it."""
        sharp, restored = sharp01 * 2.0 - 1.0, tf.cast(restored01, tf.float32) * 2.0 - 1.0
        return tf.reduce_mean(losses.restoration_loss(None, sharp, None, restored, t.loss)["generator"])

    model.compile(optimizer=optimizer, loss=loss)
    data = make_dataset(t.data, "train", t.batch_size, t.crop_size, True, seed=0).map(
        lambda blur, sharp: ((blur + 1.0) / 2.0, (sharp + 1.0) / 2.0)
    )
    return model, data


def bench_ours(recipe: dict, shards: Path, args: argparse.Namespace, policy: str) -> float:
    fn, iterator = ours_side(start(recipe, shards, args, policy), policy)
    began = time.perf_counter()
    _, finite = fn(iterator, tf.constant(args.steps))
    elapsed = time.perf_counter() - began
    assert bool(finite)
    return args.steps * args.batch / elapsed


class _Timer(keras.callbacks.Callback):
    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup, self.start = warmup, 0.0

    def on_train_batch_end(self, batch: int, logs: object = None) -> None:
        if batch + 1 == self.warmup:
            self.start = time.perf_counter()


def bench_keras_fit(recipe: dict, shards: Path, args: argparse.Namespace, policy: str) -> float:
    model, data = keras_side(start(recipe, shards, args, policy), policy)
    warmup = 3
    timer = _Timer(warmup)
    model.fit(data, steps_per_epoch=warmup + args.steps, epochs=1, verbose=0, callbacks=[timer])
    return args.steps * args.batch / (time.perf_counter() - timer.start)


def alternate(recipe: dict, shards: Path, args: argparse.Namespace, policy: str) -> dict:
    """Both loops built side by side and timed in alternation, `args.steps` steps at a time for `args.alternate`
    rounds: ours one call of the trainer's function, Keras the train function `model.fit` built and calls per
    step (after a short fit as warm-up), on its own distributed iterator. A busy spell of a shared machine then
    hits both sides of a round alike; the median of the rounds' ratios is reported."""
    t = start(recipe, shards, args, policy)
    fn, ours_it = ours_side(t, policy)
    model, data = keras_side(t, policy)
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # traces fit's train function
    keras_it = iter(model.distribute_strategy.experimental_distribute_dataset(data))
    ratios, best_ours, best_keras = [], 0.0, 0.0
    for _ in range(args.alternate):
        began = time.perf_counter()
        _, finite = fn(ours_it, tf.constant(args.steps))
        assert bool(finite)
        ours = args.steps * args.batch / (time.perf_counter() - began)
        began = time.perf_counter()
        for _ in range(args.steps):
            logs = model.train_function(keras_it)
        float(logs["loss"])  # done: the step ran to its loss
        fit = args.steps * args.batch / (time.perf_counter() - began)
        ratios.append(ours / fit)
        best_ours, best_keras = max(best_ours, ours), max(best_keras, fit)
    ratios.sort()
    return {
        f"ours_{policy}_images_per_s": round(best_ours, 2),
        f"keras_fit_{policy}_images_per_s": round(best_keras, 2),
        f"ratio_{policy}": round(ratios[len(ratios) // 2], 2),
        f"round_ratios_{policy}": [round(r, 2) for r in ratios],
    }


def measure(name: str, recipe: dict, doc: str) -> None:
    """Parse the command line, time both loops for `recipe` in each precision, print one JSON object."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds; the best of each is kept")
    parser.add_argument(
        "--alternate", type=int, default=0, help="N rounds of --steps steps each side in one process (median)"
    )
    args = parser.parse_args()
    auto = strategy.choose_precision(
        "auto", bool(tf.config.list_physical_devices("GPU")), strategy.cpu_has_native_bf16()
    )
    result: dict = {
        "benchmark": f"{name}_fit_vs_keras_fit",
        "crop": args.crop,
        "batch": args.batch,
        "steps": args.steps,
        "repeats": args.repeats,
        "alternate": args.alternate,
        "generator": recipe["generator"],
        "cpu_count": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        shards = write_shards(
            Path(tmp) / "shards", pairs=16, crop_size=128, crops_per_pair=4, frame_size=(160, 192)
        )
        for policy in dict.fromkeys((auto, "float32")):
            if args.alternate:
                result.update(alternate(recipe, shards, args, policy))
                continue
            ours = fit = 0.0
            for _ in range(args.repeats):  # interleaved: a busy spell on a shared machine hits both
                ours = max(ours, bench_ours(recipe, shards, args, policy))
                fit = max(fit, bench_keras_fit(recipe, shards, args, policy))
            result[f"ours_{policy}_images_per_s"] = round(ours, 2)
            result[f"keras_fit_{policy}_images_per_s"] = round(fit, 2)
            result[f"ratio_{policy}"] = round(ours / fit, 2)
    result["goal_ratio"] = 1.0
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    measure("nafnet", NAFNET_SMALL, __doc__)
