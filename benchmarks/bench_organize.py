"""Benchmark `organize`: pairs/s for a fresh hardlinked run, an idempotent rerun, and a `--verify` run.

Makes a synthetic sample with `gopro-prep sample` (small frames: the cost measured is listing, header checks and
linking, which do not depend on frame size except for --verify), then times `pipeline.organize.run`.
Prints one JSON line. Usage: .venv/bin/python benchmarks/bench_organize.py [--scenes 8] [--frames 25]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import OrganizeConfig  # noqa: E402
from pipeline.organize import run  # noqa: E402


def timed(cfg: OrganizeConfig, verify: bool = False) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # keep stdout to the one JSON line, stderr quiet
        run(cfg, verify=verify)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--size", default="64x48")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-organize-") as tmp:
        raw, out = Path(tmp) / "GOPRO_Large", Path(tmp) / "organized"
        sample = [
            sys.executable,
            "-m",
            "pipeline.cli",
            "sample",
            "--out",
            str(raw),
            "--scenes",
            str(args.scenes),
        ]
        sample += ["--frames", str(args.frames), "--size", args.size, "--seed", "0"]
        subprocess.run(sample, check=True, cwd=Path(__file__).resolve().parents[1])
        pairs = args.scenes * args.frames
        cfg = OrganizeConfig(raw=str(raw), out=str(out), link="hardlink")
        fresh = timed(cfg)
        rerun = timed(cfg)
        verified = timed(
            OrganizeConfig(raw=str(raw), out=str(Path(tmp) / "verified"), link="hardlink"), verify=True
        )
    result = {
        "benchmark": "organize",
        "pairs": pairs,
        "size": args.size,
        "link": "hardlink",
        "cpus": os.cpu_count(),
        "fresh_s": round(fresh, 4),
        "pairs_per_s": round(pairs / fresh, 1),
        "rerun_pairs_per_s": round(pairs / rerun, 1),
        "verify_pairs_per_s": round(pairs / verified, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
