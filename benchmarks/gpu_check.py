"""A GPU VM measured in one command: its devices and precisions, the published models' train steps (float32,
mixed_float16, mixed_float16 + XLA), MirroredStrategy over every GPU against one, whether a mixed_float16 fit
trains like a float32 one, 720p deblurring, and the GoPro recipes' hours extrapolated from the measured steps.
One JSON object per line, printed as each check finishes; under 8 minutes on one GPU VM.

    make gpu-check                                  # = .venv/bin/python benchmarks/gpu_check.py
    .venv/bin/python benchmarks/gpu_check.py --dry  # the same code on 2 logical CPU devices at tiny sizes (tests)

Without a GPU (and without --dry) it exits 2 with one line. On a GPU it stops after 470 s whatever it is doing
(`--budget-s`), with a last line saying so and exit 124; the XLA step, the slowest to compile, runs last.
Weights are random (no published checkpoint is fetched): speed does not depend on them, and the fit check trains
its own. Models: NAFNet-32 as in configs/nafnet-gopro.yaml (256 px crops, batch 8 per GPU) and DeblurGAN as in
pipeline.yaml (perceptual loss on random VGG19 features: the same compute as ImageNet's, without the download).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from gpu_steps import batches, gpu_peak_gib, prepare, time_steps  # noqa: E402

NAFNET_RECIPE, DEBLURGAN_RECIPE = ROOT / "configs" / "nafnet-gopro.yaml", ROOT / "pipeline.yaml"
NO_DOWNLOAD = ("train.loss.perceptual_weights=none",)
GPU_BUDGET_S = 470.0  # the whole check stays under 8 minutes on a GPU VM, start-up included
# --dry: the smallest models that still have every kind of layer (tracing and XLA compiling dominate on a CPU)
TINY_NAFNET = ("train.generator.width=4", "train.generator.enc_blocks=[1]", "train.generator.dec_blocks=[1]")
TINY_DEBLURGAN = ("train.generator.filters=4", "train.generator.blocks=1", "train.critic.filters=4",
                  "train.critic.updates=2")  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    crop: int = 256
    batch: int = 8  # per device
    steps: int = 20  # timed steps per measurement, after 3 warm-up steps
    fit_steps: int = 100
    frame: tuple[int, int] = (720, 1280)
    frames: int = 10
    nafnet: tuple[str, ...] = ()  # --set overrides of the recipe files
    deblurgan: tuple[str, ...] = ()
    deblurgan_batch: int = 16  # pipeline.yaml's global batch, on one device
    devices: list[str] = field(default_factory=list)


DRY = dict(crop=32, batch=2, steps=2, fit_steps=40, frame=(72, 128), frames=2, nafnet=TINY_NAFNET,
           deblurgan=TINY_DEBLURGAN, deblurgan_batch=2)  # fmt: skip
START = time.monotonic()


def emit(check: str, **fields: Any) -> dict[str, Any]:
    line = {"check": check, **fields, "elapsed_s": round(time.monotonic() - START, 1)}
    print(json.dumps(line), flush=True)
    return line


def train_config(recipe: Path, overrides: tuple[str, ...], *more: str) -> Any:
    from pipeline.config import load_config

    return load_config(recipe, [*NO_DOWNLOAD, *overrides, *more]).train


def check_devices(sizes: Sizes, gpus: list[Any]) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    from train.strategy import choose_precision, cpu_has_native_bf16

    found = []
    for gpu in gpus:
        info = tf.config.experimental.get_device_details(gpu)
        cc = info.get("compute_capability") or (0, 0)
        found.append({"name": info.get("device_name", gpu.name), "compute_capability": list(cc),
                      "float16_tensor_cores": cc >= (7, 0), "bfloat16": cc >= (8, 0)})  # fmt: skip
    build = tf.sysconfig.get_build_info()
    return emit(
        "devices",
        tensorflow=tf.__version__,
        keras=keras.__version__,
        cuda=build.get("cuda_version"),
        cudnn=build.get("cudnn_version"),
        gpus=found,
        devices=sizes.devices,
        precision_auto=choose_precision("auto", bool(gpus), cpu_has_native_bf16()),
    )


def check_nafnet(sizes: Sizes, one: Any) -> list[dict[str, Any]]:
    """NAFNet steps in float32, mixed_float16 and mixed_float16 + XLA. The first two start with `fit_steps`
    steps from the same weights on the same batches (which also warm them up): the loss falls in both, and the
    float16 weights move like the float32 ones (same direction, about as far)."""
    import numpy as np
    import tensorflow as tf

    more = (f"train.batch_size={sizes.batch}", f"train.crop_size={sizes.crop}")
    t = train_config(NAFNET_RECIPE, sizes.nafnet, *more)
    model = "NAFNet-32 (configs/nafnet-gopro.yaml)" if not sizes.nafnet else "NAFNet tiny"
    fit: dict[str, Any] = {"steps": sizes.fit_steps, "global_batch": t.batch_size, "crop": t.crop_size}
    lines, moved = [], {}
    for policy in ("float32", "mixed_float16"):
        began = time.monotonic()
        recipe, fn = prepare(t, one, policy)
        start = np.concatenate([w.ravel() for w in recipe.generator.get_weights()])
        it, losses = batches(one, sizes.batch, sizes.crop, seed=1), []
        gpu_peak_gib(reset=True)
        for _ in range(sizes.fit_steps):
            metrics, _ = fn(it, tf.constant(1))
            losses.append(float(metrics["generator"]))  # the batch mean (PSNR loss: -PSNR, lower is better)
        moved[policy] = np.concatenate([w.ravel() for w in recipe.generator.get_weights()]) - start
        tail = float(np.mean(losses[-max(1, sizes.fit_steps // 10) :]))
        fit[policy] = {
            "first_loss": round(losses[0], 4),
            "last_loss": round(tail, 4),
            "falls": tail < losses[0],
        }
        ready = (recipe, fn, it, time.monotonic() - began)
        lines.append(emit("nafnet_step", model=model, **time_steps(t, one, policy, sizes.steps, ready=ready)))
    a, b = moved["float32"], moved["mixed_float16"]
    fit["relative_distance"] = round(float(np.linalg.norm(b - a) / np.linalg.norm(a)), 4)
    fit["cosine"] = round(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))), 4)
    fit["distance_ratio"] = round(float(np.linalg.norm(b) / np.linalg.norm(a)), 4)
    fit["ok"] = bool(fit["float32"]["falls"] and fit["mixed_float16"]["falls"] and fit["cosine"] > 0.8)
    emit("mixed_fit", model=model, **fit)
    return lines


def check_nafnet_xla(sizes: Sizes, one: Any) -> dict[str, Any]:
    """The mixed_float16 NAFNet step compiled with XLA (`train.jit_compile: true`); last, as compiling is the
    slowest part of the whole check."""
    t = train_config(
        NAFNET_RECIPE, sizes.nafnet, f"train.batch_size={sizes.batch}", f"train.crop_size={sizes.crop}"
    )
    model = "NAFNet-32 (configs/nafnet-gopro.yaml)" if not sizes.nafnet else "NAFNet tiny"
    return emit("nafnet_step", model=model, **time_steps(t, one, "mixed_float16", sizes.steps, jit=True))


def stop_at(budget_s: float) -> None:
    """Leave after `budget_s` seconds whatever is running, saying so in a last line (exit 124, as timeout does):
    a device session's time is counted, and the lines printed so far stand."""

    def stop() -> None:
        print(json.dumps({"check": "stopped", "reason": f"time budget of {budget_s:g} s spent"}), flush=True)
        os._exit(124)

    timer = threading.Timer(budget_s, stop)
    timer.daemon = True
    timer.start()


def check_deblurgan_step(sizes: Sizes, one: Any, policy: str) -> dict[str, Any]:
    more = (f"train.batch_size={sizes.deblurgan_batch}", f"train.crop_size={sizes.crop}")
    t = train_config(DEBLURGAN_RECIPE, sizes.deblurgan, *more)
    model = "DeblurGAN default (pipeline.yaml)" if not sizes.deblurgan else "DeblurGAN tiny"
    return emit(
        "deblurgan_step",
        model=model,
        critic_updates=t.critic.updates,
        **time_steps(t, one, policy, sizes.steps),
    )


def check_scaling(sizes: Sizes, one: Any, every: Any, single: dict[str, Any], policy: str) -> dict[str, Any]:
    if every.num_replicas_in_sync < 2:
        return emit("mirrored_scaling", replicas=1, note="one device: nothing to scale over")
    more = (f"train.batch_size={sizes.batch * every.num_replicas_in_sync}", f"train.crop_size={sizes.crop}")
    t = train_config(NAFNET_RECIPE, sizes.nafnet, *more)
    many = time_steps(t, every, policy, sizes.steps)
    efficiency = many["images_per_s"] / (every.num_replicas_in_sync * single["images_per_s"])
    return emit("mirrored_scaling", one_device_images_per_s=single["images_per_s"], **many,
                efficiency=round(efficiency, 3))  # fmt: skip


def check_deblur(sizes: Sizes) -> list[dict[str, Any]]:
    """ms per frame through Deblurrer (the path of `trainctl deblur` and video), NAFNet with TLC."""
    import keras
    import numpy as np

    from train import archs
    from train.inference.deblurrer import Deblurrer, Loaded
    from train.strategy import set_precision

    t = train_config(NAFNET_RECIPE, sizes.nafnet)
    set_precision("float32")
    keras.utils.set_random_seed(0)
    spec = archs.spec_from_meta({"arch": archs.of(t.generator).describe(t.generator, t.crop_size)})
    weights = archs.build(t.generator, dtype="float32").get_weights()
    h, w = sizes.frame
    frame = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    ms, outputs = {}, {}
    for dtype in ("float32", "mixed_float16"):
        model = archs.build(t.generator, dtype=dtype, tlc_base=spec.tlc_base())
        model.set_weights(weights)
        deblur = Deblurrer(Loaded(model, spec, True, {"version": "random"}, "gpu-check"))
        outputs[dtype] = deblur.restore_uint8(frame)  # trace and warm up
        began = time.monotonic()
        for _ in range(sizes.frames):
            deblur.restore_uint8(frame)
        ms[dtype] = round(1000 * (time.monotonic() - began) / sizes.frames, 1)
    diff = int(np.abs(outputs["float32"].astype(int) - outputs["mixed_float16"].astype(int)).max())
    return [
        emit(
            "deblur",
            frame=f"{w}x{h}",
            precision=dtype,
            tlc=True,
            ms_per_frame=ms[dtype],
            **({"max_levels_from_float32": diff} if dtype != "float32" else {}),
        )  # fmt: skip
        for dtype in ms
    ]


def check_hours(nafnet: dict[str, Any], deblurgan: dict[str, Any]) -> dict[str, Any]:
    """The GoPro recipes' training time at the measured rates: extrapolated, not run."""
    estimates = []
    for recipe, rate in ((NAFNET_RECIPE, nafnet), (DEBLURGAN_RECIPE, deblurgan)):
        t = train_config(recipe, ())
        hours = t.steps * t.batch_size / rate["images_per_s"] / 3600
        estimates.append({"recipe": str(recipe.relative_to(ROOT)), "steps": t.steps, "global_batch": t.batch_size,
                          "measured_images_per_s": rate["images_per_s"], "replicas": rate["replicas"],
                          "precision": rate["precision"], "xla": rate["xla"], "hours": round(hours, 1)})  # fmt: skip
    return emit(
        "gopro_hours", extrapolated=True, basis="measured steps/s x the recipe's steps", recipes=estimates
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="CPU rehearsal at tiny sizes (2 logical devices).")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="Stop after this long (GPU default 470)."
    )
    args = parser.parse_args()
    from train.tf_startup import import_tensorflow

    tf = import_tensorflow()  # without the CUDA probing noise: the refusal below is one line
    gpus = tf.config.list_physical_devices("GPU")
    if args.dry:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    elif not gpus:
        print("error: gpu_check: TensorFlow sees no GPU; run it on a GPU VM (or --dry for the CPU rehearsal)",
              file=sys.stderr)  # fmt: skip
        return 2
    budget = args.budget_s if args.budget_s is not None else (None if args.dry else GPU_BUDGET_S)
    if budget:
        stop_at(budget)
    kind = "CPU" if args.dry else "GPU"
    names = [d.name for d in tf.config.list_logical_devices(kind)]
    sizes = Sizes(**DRY, devices=names) if args.dry else Sizes(devices=names)
    one, every = tf.distribute.OneDeviceStrategy(names[0]), tf.distribute.MirroredStrategy(names)
    # Most telling first: a budget stop (exit 124) cuts the XLA step, the slowest to compile.
    check_devices(sizes, gpus)
    _, half = check_nafnet(sizes, one)
    gan = check_deblurgan_step(sizes, one, "mixed_float16")
    scaling = check_scaling(sizes, one, every, half, "mixed_float16")
    check_deblur(sizes)
    check_hours(scaling if "images_per_s" in scaling else half, gan)
    check_nafnet_xla(sizes, one)
    emit("done", seconds=round(time.monotonic() - START, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
