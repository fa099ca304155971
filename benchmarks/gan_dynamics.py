"""Why the adversarial term costs PSNR: the critic's scores and the generator's gradients over one GAN fit.

Trains one bench_quality configuration with the trainer's own pieces (the recipe's replica step inside
train.fit.loop's compiled steps-per-call function, the same data, schedule and precision as `trainctl fit`), and every
`--every` steps measures on a fixed probe batch of training crops:
  - the critic's mean score on sharp images D(y) and on restorations D(G(x)) (their drift), and its input-gradient
    norm ||grad_x D|| at both (WGAN-GP aims for 1);
  - at the generator's output image: the L1 gradient and the weighted adversarial gradient, as norms per example
    and per pixel, and their ratio;
  - at the generator's weights: the same two gradients (norms, cosine), raw and as Adam scales them (divided by
    the optimizer's running RMS, which is what sets the step);
  - the held-out PSNR gain of the generator so far (full frames, as `trainctl evaluate` scores them).
Prints one JSON line per measurement. Not run by `make bench` (it is a full fit); figures in BENCHMARKS.md.

    .venv/bin/python benchmarks/gan_dynamics.py [--config deblurgan-gan] [--steps 1500] [--every 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402
import quality_configs  # noqa: E402
import quality_data  # noqa: E402
import tensorflow as tf  # noqa: E402

from train import strategy  # noqa: E402
from train.config import Config  # noqa: E402
from train.evaluation.evaluate import load_pair, make_batch_predictor, read_split_rows, score_pair  # noqa: E402
from train.fit import losses  # noqa: E402
from train.fit.data import make_dataset, stack_replicas  # noqa: E402
from train.fit.loop import train_function  # noqa: E402
from train.recipes.gan import GanRecipe  # noqa: E402


def _norm(tensors: list[tf.Tensor]) -> float:
    return float(tf.linalg.global_norm([t for t in tensors if t is not None]))


def _cosine(a: list[tf.Tensor], b: list[tf.Tensor]) -> float:
    dot = sum(
        float(tf.reduce_sum(x * y)) for x, y in zip(a, b, strict=True) if x is not None and y is not None
    )
    return dot / max(_norm(a) * _norm(b), 1e-30)


def adam_scaled(optimizer: object, grads: list[tf.Tensor], variables: list) -> list[tf.Tensor]:
    """Each gradient divided by Adam's running RMS of its variable (bias-corrected): its share of the step."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    t = float(inner.iterations.numpy())
    correction = 1.0 - float(inner.beta_2) ** max(t, 1.0)
    out = []
    for g, v in zip(grads, variables, strict=True):
        rms = tf.sqrt(inner._velocities[inner._get_variable_index(v)] / correction) + inner.epsilon
        out.append(g / rms)
    return out


def probe(recipe: GanRecipe, blur: tf.Tensor, sharp: tf.Tensor, weight: float) -> dict[str, float]:
    critic, g_vars = recipe.critic, recipe.generator.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        restored = recipe.restore(blur, training=False)
        l1 = tf.reduce_mean(tf.abs(sharp - restored))
        adv = weight * tf.reduce_mean(losses.adversarial_loss(critic, restored))
    g_l1, g_adv = tape.gradient(l1, g_vars), tape.gradient(adv, g_vars)
    o_l1, o_adv = tape.gradient(l1, restored), tape.gradient(adv, restored)
    del tape
    per_example = lambda g: tf.sqrt(tf.reduce_sum(tf.square(g), axis=[1, 2, 3]))  # noqa: E731
    pixels = float(tf.size(restored[0]))
    fake = tf.identity(restored)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([fake, sharp])
        d_fake = losses.critic_scores(critic(fake, training=True))
        d_real = losses.critic_scores(critic(sharp, training=True))
        sum_fake, sum_real = tf.reduce_sum(d_fake), tf.reduce_sum(d_real)  # per-example gradients
    grad_fake = per_example(tape.gradient(sum_fake, fake))
    grad_real = per_example(tape.gradient(sum_real, sharp))
    del tape
    u_l1 = adam_scaled(recipe.generator_optimizer, g_l1, g_vars)
    u_adv = adam_scaled(recipe.generator_optimizer, g_adv, g_vars)
    kernel = recipe.critic.get_layer("score").kernel
    return {
        "d_real": float(tf.reduce_mean(d_real)),
        "d_fake": float(tf.reduce_mean(d_fake)),
        "critic_grad_norm_fake": float(tf.reduce_mean(grad_fake)),
        "critic_grad_norm_real": float(tf.reduce_mean(grad_real)),
        "out_grad_l1_per_example": float(tf.reduce_mean(per_example(o_l1))) * float(blur.shape[0]),
        "out_grad_adv_per_example": float(tf.reduce_mean(per_example(o_adv))) * float(blur.shape[0]),
        "out_grad_ratio_adv_over_l1": float(tf.reduce_mean(per_example(o_adv) / per_example(o_l1))),
        "pixels_per_example": pixels,
        "weight_grad_l1": _norm(g_l1),
        "weight_grad_adv": _norm(g_adv),
        "weight_grad_ratio": _norm(g_adv) / max(_norm(g_l1), 1e-30),
        "weight_grad_cosine": _cosine(g_l1, g_adv),
        "adam_step_ratio": _norm(u_adv) / max(_norm(u_l1), 1e-30),
        "critic_score_kernel_norm": float(tf.norm(kernel)),
    }


def held_out_gain(recipe: GanRecipe, organized: Path) -> float:
    from train import archs

    rows = read_split_rows(str(organized), "test")
    t = recipe.cfg
    spec = archs.spec_from_meta({"arch": recipe.arch.describe(t.generator, t.crop_size)})
    predict = make_batch_predictor(recipe.generator, tf.distribute.get_strategy(), spec)
    scores = []
    for row in rows:
        blur, sharp = load_pair(str(organized), row)
        scores.append(score_pair(row, blur, predict(blur[None])[0], sharp, 0))
    return float(np.mean([s.psnr - s.psnr_input for s in scores]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="deblurgan-gan", choices=sorted(quality_configs.CONFIGS))
    parser.add_argument("--dataset", default="photos", choices=("sample", "photos"))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-weight", type=float, default=0.001, help="adversarial weight probed when 0")
    parser.add_argument("--work", type=Path, default=None, help="datasets are built (or reused) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        data = quality_data.build(args.dataset, work / f"{args.dataset}-full" / "data", quick=False)
        budget = {"steps": args.steps, "batch": args.batch, "crop": args.crop}
        phases = quality_configs.phases(args.config, data.shards, Path(tmp) / "run", budget, args.seed)
        t = Config.model_validate(phases[-1]).train
        policy = strategy.choose_precision(t.mixed_precision, False, strategy.cpu_has_native_bf16())
        strategy.set_precision(policy)
        import keras

        keras.utils.set_random_seed(t.seed)
        dist = tf.distribute.get_strategy()
        recipe = GanRecipe(dist, t, policy)
        data_iter = make_dataset(t.data, "train", t.batch_size, t.crop_size, True, seed=t.seed)
        iterator = iter(stack_replicas(data_iter, 1))
        blur, sharp = next(iter(make_dataset(t.data, "train", 16, t.crop_size, True, seed=12345)))
        fn = train_function(dist, recipe)
        step = 0
        while step < t.steps:
            n = min(args.every, t.steps - step)
            metrics, finite = fn(iterator, tf.constant(n, tf.int32))
            step = int(recipe.step.numpy())
            line = {"config": args.config, "step": step, "finite": bool(finite)}
            line.update({k: round(float(v), 5) for k, v in metrics.items()})
            weight = t.loss.adversarial or args.probe_weight  # an L1-only run: what the term would weigh
            line.update({k: round(v, 6) for k, v in probe(recipe, blur, sharp, weight).items()})
            line["held_out_psnr_gain"] = round(held_out_gain(recipe, data.organized), 3)
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
