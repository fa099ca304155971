"""Input pipeline speed vs what a train step consumes (goal: input >= 5x faster than the step needs).

Shards are written with the real record schema (tests/shards_fixture.py: bundled photographs, motion blur) at the
shard stage's default crop (256) in both encodings; `train.fit.data.make_dataset` then streams random training crops
exactly as `trainctl fit` does (parallel interleave, shuffle, decode, paired crop/flip/rot90, batch, prefetch).
The consumer rate is the trainer's fused step on the same batches, for the full DeblurGAN (64 filters, 9 blocks,
5 critic updates) and for the demo-sized model (16 filters, 3 blocks, pixel loss only), the most demanding
consumer, and for the small NAFNet of the quality benchmark (width 16, PSNR loss). Prints one JSON object.

    .venv/bin/python benchmarks/bench_input.py [--batches 200] [--crop 128] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from quality_configs import NAFNET_SMALL  # noqa: E402
from shards_fixture import write_shards  # noqa: E402

from train import strategy  # noqa: E402
from train.config import Config  # noqa: E402
from train.fit.data import make_dataset, stack_replicas  # noqa: E402
from train.fit.loop import train_function  # noqa: E402
from train.recipes import make_recipe  # noqa: E402


def input_rate(shards: Path, crop: int, batch: int, batches: int) -> float:
    """Batches/s of the training input pipeline (after a warm-up that fills the shuffle buffer)."""
    it = iter(make_dataset(str(shards), "train", batch, crop, True, seed=0))
    for _ in range(20):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches / (time.perf_counter() - start)


def step_rate(shards: Path, crop: int, batch: int, model: dict, steps: int) -> float:
    """Batches/s the trainer's fused step consumes (precision `auto`, as `trainctl fit` runs by default)."""
    keras.backend.clear_session()
    policy = strategy.choose_precision(
        "auto", bool(tf.config.list_physical_devices("GPU")), strategy.cpu_has_native_bf16()
    )
    strategy.set_precision(policy)
    t = Config.model_validate(
        {"train": {"data": str(shards), "batch_size": batch, "crop_size": crop, **model}}
    ).train
    dist = tf.distribute.get_strategy()
    iterator = iter(stack_replicas(make_dataset(t.data, "train", batch, crop, True, seed=0), 1))
    fn = train_function(dist, make_recipe(dist, t, policy))
    fn(iterator, tf.constant(2))
    start = time.perf_counter()
    fn(iterator, tf.constant(steps))
    return steps / (time.perf_counter() - start)


FULL = {
    "generator": {"filters": 64, "blocks": 9},
    "critic": {"filters": 64, "updates": 5},
    "loss": {"perceptual_weights": "none"},
}
DEMO = {
    "generator": {"filters": 16, "blocks": 3},
    "critic": {"filters": 16, "updates": 1},
    "loss": {"perceptual": 0.0, "adversarial": 0.0, "pixel": 1.0, "perceptual_weights": "none"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--demo-crop", type=int, default=64)
    parser.add_argument("--demo-batch", type=int, default=8)
    args = parser.parse_args()
    result: dict = {"benchmark": "input_pipeline", "cpu_count": os.cpu_count(), "shard_crop": 256}
    with tempfile.TemporaryDirectory() as tmp:
        shards = {
            enc: write_shards(
                Path(tmp) / enc,
                pairs=48,
                crop_size=256,
                crops_per_pair=4,
                shards={"train": 8},
                frame_size=(288, 384),
                encoding=enc,
            )
            for enc in ("raw", "png")
        }
        for enc, path in shards.items():
            result[f"input_{enc}_crop{args.crop}_batch{args.batch}_batches_per_s"] = round(
                input_rate(path, args.crop, args.batch, args.batches), 2
            )
            result[f"input_{enc}_crop{args.demo_crop}_batch{args.demo_batch}_batches_per_s"] = round(
                input_rate(path, args.demo_crop, args.demo_batch, args.batches), 2
            )
        full = step_rate(shards["raw"], args.crop, args.batch, FULL, steps=3)
        demo = step_rate(shards["raw"], args.demo_crop, args.demo_batch, DEMO, steps=100)
        naf = step_rate(shards["raw"], args.demo_crop, args.demo_batch, NAFNET_SMALL, steps=50)
    result["train_full_model_batches_per_s"] = round(full, 3)
    result["train_demo_model_batches_per_s"] = round(demo, 2)
    result["train_nafnet_small_batches_per_s"] = round(naf, 2)
    result["ratio_raw_nafnet_small"] = round(
        result[f"input_raw_crop{args.demo_crop}_batch{args.demo_batch}_batches_per_s"] / naf, 1
    )
    for enc in ("raw", "png"):
        result[f"ratio_{enc}_full_model"] = round(
            result[f"input_{enc}_crop{args.crop}_batch{args.batch}_batches_per_s"] / full, 1
        )
        result[f"ratio_{enc}_demo_model"] = round(
            result[f"input_{enc}_crop{args.demo_crop}_batch{args.demo_batch}_batches_per_s"] / demo, 1
        )
    result["goal_ratio"] = 5.0
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
