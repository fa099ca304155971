"""Peak RSS of `trainctl fit` on 1x vs 4x the data (goal: within 10%): training streams shards, never loads them.

Two shards dirs with the same crop size, the second holding 4x the pairs; each fit runs in a fresh process for
enough steps to read its whole training split at least once, and reports its own peak RSS (ru_maxrss).
Prints one JSON object.

    .venv/bin/python benchmarks/bench_memory.py [--pairs 32] [--encoding raw]
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from shards_fixture import write_shards  # noqa: E402

FIT = """
import json, resource, sys
from train.config import Config
from train.fit.trainer import run
cfg = Config.model_validate(json.loads(sys.argv[1]))
result = run(cfg)
print(json.dumps({"step": result.step, "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def fit_peak_rss(shards: Path, run_dir: Path, steps: int, batch: int) -> dict:
    cfg = {
        "train": {
            "data": str(shards),
            "run_dir": str(run_dir),
            "steps": steps,
            "batch_size": batch,
            "crop_size": 64,
            "generator": {"filters": 16, "blocks": 3},
            "critic": {"filters": 16, "updates": 1},
            "loss": {"perceptual": 0.001, "adversarial": 0.001, "pixel": 1.0, "perceptual_weights": "none"},
            "checkpoint_every": max(1, steps // 2),
            "version_every": steps,
            "log_every": max(1, steps // 4),
        }
    }
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", FIT, json.dumps(cfg)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32, help="pairs in the 1x dataset (4 crops of 256 each)")
    parser.add_argument("--encoding", default="raw", choices=("raw", "png"))
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    result: dict = {"benchmark": "fit_peak_rss", "encoding": args.encoding, "crop": 256, "train_crop": 64}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 4):
            pairs = args.pairs * scale
            shards = write_shards(
                Path(tmp) / f"x{scale}",
                pairs=pairs,
                crop_size=256,
                crops_per_pair=4,
                shards={"train": 8},
                frame_size=(288, 384),
                encoding=args.encoding,
            )
            size = sum(f.stat().st_size for f in shards.iterdir())
            examples = pairs * 4
            steps = -(-examples // args.batch)  # one full pass over the training split
            rss = fit_peak_rss(shards, Path(tmp) / f"run{scale}", steps, args.batch)
            result[f"x{scale}"] = {
                "examples": examples,
                "shards_mb": round(size / 2**20, 1),
                "steps": rss["step"],
                "peak_rss_mb": round(rss["max_rss_kb"] / 1024, 1),
            }
    one, four = result["x1"]["peak_rss_mb"], result["x4"]["peak_rss_mb"]
    result["rss_ratio_4x_over_1x"] = round(four / one, 3)
    result["goal_ratio_max"] = 1.10
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
