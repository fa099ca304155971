"""Write the README picture: blur | deblurred | sharp for a few held-out frames, with a generator version.

python scripts/demo_grid.py VERSION_DIR ORGANIZED_DIR OUT.png [--split test] [--pairs 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("organized", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()

    from pipeline.fsio import write_png
    from train.deblur import read_rgb, sample_grid
    from train.versions import load_generator

    rows = [json.loads(line) for line in (args.organized / "manifest.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if r["split"] == args.split][: args.pairs]
    blur = np.stack([read_rgb(args.organized / r["a"]) for r in rows])
    sharp = np.stack([read_rgb(args.organized / r["b"]) for r in rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, sample_grid(load_generator(args.version_dir), blur, sharp))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
