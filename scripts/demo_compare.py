"""`make demo`'s verdict: one line per model from `trainctl evaluate --out` files, and the better run dir.

python scripts/demo_compare.py NAME=METRICS.json NAME=METRICS.json ... [--best-file FILE]

Prints `NAME  PSNR x dB vs input y dB (+z dB), SSIM ...` per model, best first, and writes the NAME with the
highest held-out PSNR to --best-file (the Makefile deblurs with that run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def line(name: str, m: dict, width: int) -> str:
    return (
        f"{name:<{width}}  PSNR {m['psnr']:.2f} dB vs input {m['psnr_input']:.2f} dB ({m['psnr_gain']:+.2f} dB), "
        f"SSIM {m['ssim']:.4f} vs {m['ssim_input']:.4f}  ({m['version']}, {m['pairs']} held-out frames)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="NAME=METRICS.json")
    parser.add_argument("--best-file", type=Path, default=None)
    args = parser.parse_args()
    results = {}
    for item in args.results:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"demo_compare: expected NAME=METRICS.json, got {item!r}")
        try:
            m = json.loads(Path(path).read_text())
            line(name, m, 0)  # every key the verdict needs is there
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(
                f"demo_compare: {path}: not a `trainctl evaluate --out` file ({exc!r})"
            ) from None
        results[name] = m
    ranked = sorted(results, key=lambda n: results[n]["psnr"], reverse=True)
    width = max(map(len, ranked))
    for name in ranked:
        print(line(name, results[name], width))
    print(f"best: {ranked[0]}")
    if args.best_file is not None:
        args.best_file.write_text(ranked[0] + "\n")


if __name__ == "__main__":
    main()
