"""Train-step speed: our fused distributed GAN step vs the seed article's Keras `train_on_batch` loop.

Both use the same generator and critic (DeblurGAN sizes by default: 64 filters, 9 blocks), the same VGG19
block3_conv3 perceptual loss (weight 100) and adversarial loss (weight 1), 5 critic updates per generator update,
the same crop and batch, on the same shards. The seed loop has no gradient penalty (as in the article); our
trainer is measured as configured (gradient penalty 10, precision `auto`) and also in float32 and without the
penalty, so each factor is visible; the seed loop is also run under the `auto` policy, so the gain from
precision alone is visible too. Prints one JSON object.

    .venv/bin/python benchmarks/bench_train.py [--crop 128] [--batch 4] [--steps 5] [--filters 64] [--blocks 9]
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from shards_fixture import write_shards  # noqa: E402

from train import strategy  # noqa: E402
from train.archs.critic import build_critic  # noqa: E402
from train.archs.deblurgan import DeblurGanSettings, build  # noqa: E402
from train.config import Config  # noqa: E402
from train.fit import losses  # noqa: E402
from train.fit.data import make_dataset, stack_replicas  # noqa: E402
from train.fit.loop import train_function  # noqa: E402
from train.recipes import make_recipe  # noqa: E402


def train_config(args: argparse.Namespace, shards: Path, gradient_penalty: float) -> Config:
    return Config.model_validate(
        {
            "train": {
                "data": str(shards),
                "batch_size": args.batch,
                "crop_size": args.crop,
                "steps": 1000,
                "generator": {"filters": args.filters, "blocks": args.blocks},
                "critic": {"filters": args.filters, "updates": 5, "gradient_penalty": gradient_penalty},
                "loss": {"perceptual": 100.0, "adversarial": 1.0, "pixel": 0.0, "perceptual_weights": "none"},
            }
        }
    )


def bench_ours(args: argparse.Namespace, shards: Path, policy: str, gradient_penalty: float) -> float:
    """Images/s of the trainer's fused step function (what `trainctl fit` runs between log lines)."""
    keras.backend.clear_session()
    strategy.set_precision(policy)
    t = train_config(args, shards, gradient_penalty).train
    dist = tf.distribute.get_strategy()
    iterator = iter(stack_replicas(make_dataset(t.data, "train", t.batch_size, t.crop_size, True, seed=0), 1))
    fn = train_function(dist, make_recipe(dist, t, policy))
    fn(iterator, tf.constant(2))  # trace + warm up
    start = time.perf_counter()
    _, finite = fn(iterator, tf.constant(args.steps))
    elapsed = time.perf_counter() - start
    assert bool(finite)
    return args.steps * args.batch / elapsed


def bench_seed(args: argparse.Namespace, shards: Path, policy: str = "float32") -> float:
    """Images/s of the seed article's loop: g.predict, 5 x (d.train_on_batch real, fake), d_on_g.train_on_batch."""
    keras.backend.clear_session()
    strategy.set_precision(policy)
    t = train_config(args, shards, 0.0).train
    features = losses.build_feature_extractor("none")
    g = build(DeblurGanSettings(filters=args.filters, blocks=args.blocks))
    d = build_critic(args.filters)

    def wasserstein(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(y_true * y_pred)

    def perceptual(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        real = features(losses.vgg_preprocess(y_true))
        return tf.reduce_mean(tf.square(real - features(losses.vgg_preprocess(y_pred))))

    d.trainable = True
    d.compile(optimizer=keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.999), loss=wasserstein)
    d.trainable = False
    blurred = keras.Input((None, None, 3))
    restored = g(blurred)
    d_on_g = keras.Model(blurred, [restored, d(restored)])
    d_on_g.compile(
        optimizer=keras.optimizers.Adam(1e-4, beta_1=0.9, beta_2=0.999),
        loss=[perceptual, wasserstein],
        loss_weights=[100.0, 1.0],
    )
    d.trainable = True
    batches = iter(make_dataset(t.data, "train", t.batch_size, t.crop_size, True, seed=0))
    side = args.crop // 8
    ones = np.ones((args.batch, side, side, 1), np.float32)

    def step() -> None:
        blur, sharp = (x.numpy() for x in next(batches))
        generated = g.predict(blur, verbose=0)
        for _ in range(5):
            d.train_on_batch(sharp, ones)
            d.train_on_batch(generated, -ones)
        d.trainable = False
        d_on_g.train_on_batch(blur, [sharp, ones])
        d.trainable = True

    for _ in range(2):  # trace + warm up
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps * args.batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    args = parser.parse_args()
    auto = strategy.choose_precision(
        "auto", bool(tf.config.list_physical_devices("GPU")), strategy.cpu_has_native_bf16()
    )
    with tempfile.TemporaryDirectory() as tmp:
        shards = write_shards(
            Path(tmp) / "shards",
            pairs=8,
            crop_size=args.crop,
            crops_per_pair=2,
            frame_size=(args.crop + 32, args.crop + 64),
        )
        seed = bench_seed(args, shards)
        seed_auto = bench_seed(args, shards, auto) if auto != "float32" else seed
        ours = {
            f"ours_{auto}_gp10": bench_ours(args, shards, auto, 10.0),
            "ours_float32_gp10": bench_ours(args, shards, "float32", 10.0),
            "ours_float32_gp0": bench_ours(args, shards, "float32", 0.0),
        }
    result = {
        "benchmark": "train_step",
        "crop": args.crop,
        "batch": args.batch,
        "generator": {"filters": args.filters, "blocks": args.blocks},
        "critic_updates": 5,
        "cpu_count": os.cpu_count(),
        "seed_train_on_batch_images_per_s": round(seed, 3),
        f"seed_train_on_batch_{auto}_images_per_s": round(seed_auto, 3),
        **{f"{k}_images_per_s": round(v, 3) for k, v in ours.items()},
        **{f"{k}_speedup": round(v / seed, 2) for k, v in ours.items()},
        f"ours_{auto}_gp10_speedup_vs_seed_{auto}": round(ours[f"ours_{auto}_gp10"] / seed_auto, 2),
        "goal_speedup": 1.5,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
