"""Held-out quality per architecture and recipe at one budget: PSNR/SSIM gain over the blurred input.

For each dataset (quality_data.py: the built-in `sample`, and `photos`, real photographs with synthetic motion
split by photo) and each configuration below, trains with `train.fit.trainer.run` (what `trainctl fit` runs) in a
fresh process, then scores the final version on the full held-out frames with `train.evaluation.evaluate.evaluate_version`
(what `trainctl evaluate` runs). Every configuration gets the same steps, batch and crop. Prints one JSON line
per (dataset, configuration): held-out PSNR/SSIM of the model and of the input, the gain, fit seconds, and for
GAN runs the adversarial loss and critic scores over training (from the run's TensorBoard events).

    .venv/bin/python benchmarks/bench_quality.py            # make bench size: 3 configs, 150 steps, batch 8
    .venv/bin/python benchmarks/bench_quality.py --full     # the issue's budget: 1500 steps, batch 16, 96 px
    .venv/bin/python benchmarks/bench_quality.py --full --datasets photos --configs nafnet deblurgan-gan \\
        --work /tmp/quality    # keep datasets and runs; a rerun reuses both (finished runs are only re-scored)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import quality_configs  # noqa: E402
import quality_data  # noqa: E402

QUICK = {"steps": 150, "batch": 8, "crop": 64}
FULL = {"steps": 1500, "batch": 16, "crop": 96}
QUICK_CONFIGS = ("deblurgan-l1", "deblurgan-gan", "nafnet")

CHILD = """
import json, sys, time
from train.config import Config
from train.fit import trainer
from train.evaluation.evaluate import evaluate_version
from train.run.versions import resolve_version
import tensorflow as tf
phases, src = json.loads(sys.argv[1]), sys.argv[2]
seconds = 0.0
for phase in phases:
    start = time.monotonic()
    trainer.run(Config.model_validate(phase))
    seconds += time.monotonic() - start
version = resolve_version(phases[-1]["train"]["run_dir"], "latest")
result = evaluate_version(version, src, "test", 0, 4, tf.distribute.get_strategy())
print(json.dumps({"seconds": seconds, "eval": result}))
"""


def train_curves(run_dir: Path) -> dict[str, list[float]]:
    """Logged losses of a run (TensorBoard scalars `loss/*`), in step order."""
    import tensorflow as tf

    curves: dict[str, dict[int, float]] = {}
    for events in sorted((run_dir / "logs").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if value.tag.startswith("loss/"):
                    number = float(tf.make_ndarray(value.tensor))
                    curves.setdefault(value.tag[5:], {})[int(event.step)] = number
    return {k: [v[s] for s in sorted(v)] for k, v in curves.items()}


def gan_summary(run_dir: Path) -> dict[str, float]:
    """How the critic's scores moved: the generator's adversarial loss -D(G(x)) and the Wasserstein estimate
    D(G(x)) - D(y), first and last logged values and the largest |adversarial|; the adversarial gradient share
    (first, last, largest) where the run logged it."""
    curves = train_curves(run_dir)
    if not curves.get("adversarial"):
        return {}
    adv, w = curves["adversarial"], curves.get("wasserstein", [0.0])
    summary = {
        "adversarial_first": round(adv[0], 3),
        "adversarial_last": round(adv[-1], 3),
        "adversarial_max_abs": round(max(abs(a) for a in adv), 3),
        "wasserstein_first": round(w[0], 4),
        "wasserstein_last": round(w[-1], 4),
    }
    share = curves.get("adversarial_share")
    if share:  # the adversarial term's gradient at the output kernel over the other terms' (after any cap)
        summary.update(
            share_first=round(share[0], 4), share_last=round(share[-1], 4), share_max=round(max(share), 4)
        )
    return summary


def run_config(name: str, data: quality_data.Dataset, work: Path, budget: dict, seed: int) -> dict:
    """Fit and score one configuration in a fresh process; its result (and the fit's log) are kept in `work`,
    and a kept result is returned as is."""
    saved, log_path = work / f"{name}.json", work / f"{name}.log"
    if saved.exists():
        return json.loads(saved.read_text())
    phases = quality_configs.phases(name, data.shards, work / "runs" / name, budget, seed)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    load = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(phases), str(data.organized)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(done.stderr)
    if done.returncode:
        raise SystemExit(f"{name} on {data.name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    ev = out["eval"]
    result = {
        "benchmark": "quality",
        "dataset": data.name,
        "config": name,
        "steps": budget["steps"],
        "batch": budget["batch"],
        "crop": budget["crop"],
        "seed": seed,
        "held_out_pairs": ev["pairs"],
        "psnr": round(ev["psnr"], 3),
        "psnr_input": round(ev["psnr_input"], 3),
        "psnr_gain": round(ev["psnr_gain"], 3),
        "ssim": round(ev["ssim"], 4),
        "ssim_input": round(ev["ssim_input"], 4),
        "seconds": round(out["seconds"], 1),
        "load_avg_start": round(load, 2),
        "load_avg_end": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }
    result.update(gan_summary(Path(phases[-1]["train"]["run_dir"])))
    saved.write_text(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="1500 steps, batch 16, 96 px crops, every config")
    parser.add_argument("--datasets", nargs="+", default=None, choices=("sample", *quality_data.PHOTO_SETS))
    parser.add_argument("--configs", nargs="+", default=None, choices=sorted(quality_configs.CONFIGS))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="keep datasets and runs here (reused)")
    args = parser.parse_args()
    quick = not args.full and os.environ.get("BENCH_FULL") != "1"
    budget = dict(QUICK if quick else FULL)
    for key in budget:
        if getattr(args, key) is not None:
            budget[key] = getattr(args, key)
    datasets = args.datasets or (["photos"] if quick else ["sample", "photos"])
    configs = args.configs or (list(QUICK_CONFIGS) if quick else list(quality_configs.CONFIGS))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        size = "quick" if quick else "full"
        for name in datasets:
            data = quality_data.build(name, work / f"{name}-{size}" / "data", quick)
            tag = f"s{budget['steps']}-b{budget['batch']}-c{budget['crop']}-seed{args.seed}"
            for config in configs:
                result = run_config(config, data, work / f"{name}-{size}" / tag, budget, args.seed)
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
