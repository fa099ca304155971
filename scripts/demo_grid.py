"""Write the README picture: blur | deblurred | sharp for a few held-out frames, from `trainctl deblur`'s output.

python scripts/demo_grid.py ORGANIZED_DIR DEBLURRED_DIR OUT.png [--split test] [--pairs 2]

The middle column is the file `trainctl deblur` wrote for each frame (DEBLURRED_DIR/<stem of A>.png), so the
picture shows exactly what the command produced, whatever the architecture.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("organized", type=Path)
    parser.add_argument("deblurred", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()

    from pipeline.fsio import write_png
    from pipeline.manifest import read_pairs
    from train.fit.samples import sample_grid
    from train.inference.images import read

    rows = [pair for pair in read_pairs(str(args.organized)) if pair.split == args.split][: args.pairs]
    paths = [
        (args.organized / pair.a, args.deblurred / f"{Path(pair.a).stem}.png", args.organized / pair.b)
        for pair in rows
    ]
    missing = [str(p) for row in paths for p in row if not p.is_file()]
    if missing:
        raise SystemExit(f"demo_grid: {missing[0]}: no such file")
    # sample_grid takes [-1, 1] batches; the demo frames are 8-bit RGB
    columns = [
        np.stack([read(p) for p in column]).astype(np.float32) / 127.5 - 1.0
        for column in zip(*paths, strict=True)
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, sample_grid(*columns))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
