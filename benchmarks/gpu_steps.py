"""What gpu_check.py times: the trainer's own compiled loop on synthetic (blur, sharp) batches, per precision.

A fresh recipe per measurement is seeded, so every precision starts from the same weights; batches are smooth
random textures with edges, motion-blurred along a line (learnable: a fit on them lowers the loss), stacked per
replica exactly as the trainer feeds its loop.
"""

from __future__ import annotations

import time
from typing import Any


def pairs(count: int, crop: int, seed: int) -> tuple[Any, Any]:
    """(blur, sharp) float32 in [-1, 1]: smooth random textures with edges, motion-blurred along a line."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    sharp, blur = [], []
    for _ in range(count):
        scales = [rng.uniform(0, 1, (crop // s + 1, crop // s + 1, 3)) for s in (32, 8, 2)]
        image = sum(cv2.resize(x, (crop, crop), interpolation=cv2.INTER_CUBIC) for x in scales) / 3
        image = np.where(rng.uniform(0, 1, (crop, 1, 1)) > 0.9, 1 - image, image).astype(np.float32)
        kernel = np.zeros((9, 9), np.float32)
        kernel[4, :] = 1 / 9
        rot = cv2.getRotationMatrix2D((4, 4), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (9, 9))
        sharp.append(np.clip(image, 0, 1) * 2 - 1)
        blur.append(cv2.filter2D(sharp[-1], -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT))
    return np.stack(blur), np.stack(sharp)


def batches(strategy: Any, per_replica: int, crop: int, seed: int = 0) -> Any:
    """An endless iterator of [replicas, per_replica, crop, crop, 3] (blur, sharp) batches, as the trainer's."""
    import tensorflow as tf

    from train.fit.data import stack_replicas

    blur, sharp = pairs(4 * per_replica * strategy.num_replicas_in_sync, crop, seed)
    ds = tf.data.Dataset.from_tensor_slices((blur, sharp)).repeat().batch(per_replica, drop_remainder=True)
    return iter(stack_replicas(ds, strategy.num_replicas_in_sync))


def prepare(t: Any, strategy: Any, policy: str, jit: bool = False) -> tuple[Any, Any]:
    """A fresh recipe for `t` under `policy` (seeded: every precision starts from the same weights) and the
    trainer's compiled steps-per-call function."""
    import keras

    from train.fit.loop import train_function
    from train.recipes import make_recipe
    from train.strategy import set_precision

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    set_precision(policy)
    recipe = make_recipe(strategy, t, policy)
    return recipe, train_function(strategy, recipe, jit_compile=jit)


def gpu_peak_gib(reset: bool = False) -> float | None:
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    if reset:
        tf.config.experimental.reset_memory_stats("GPU:0")
        return None
    return round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30, 2)


def time_steps(t: Any, strategy: Any, policy: str, steps: int, jit: bool = False, ready: Any = None) -> dict:
    """Time `steps` steps of the trainer's loop; `ready`: (recipe, fn, iterator, seconds) already traced
    and warmed up (the fit check's), else a fresh recipe is traced and warmed up here."""
    import tensorflow as tf

    if ready is None:
        began = time.monotonic()
        recipe, fn = prepare(t, strategy, policy, jit)
        it = batches(strategy, t.batch_size // strategy.num_replicas_in_sync, t.crop_size)
        gpu_peak_gib(reset=True)
        fn(it, tf.constant(3))  # trace, compile, warm up
        float(recipe.step.numpy())
        ready = (recipe, fn, it, time.monotonic() - began)
    recipe, fn, it, start_s = ready
    began = time.monotonic()
    _, finite = fn(it, tf.constant(steps))
    float(recipe.step.numpy())  # waits for the device
    seconds = time.monotonic() - began
    return {
        "precision": policy,
        "xla": jit,
        "replicas": strategy.num_replicas_in_sync,
        "global_batch": t.batch_size,
        "crop": t.crop_size,
        "ms_per_step": round(1000 * seconds / steps, 1),
        "images_per_s": round(steps * t.batch_size / seconds, 2),
        "start_s": round(start_s, 1),
        "finite": bool(finite),
        "peak_gib": gpu_peak_gib(),
    }
