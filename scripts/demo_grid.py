"""Write the README picture: blur | deblurred | sharp for a few held-out frames, with a generator version.

python scripts/demo_grid.py VERSION_DIR ORGANIZED_DIR OUT.png [--split test] [--pairs 2]
"""

from __future__ import annotations

import argparse
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
    from pipeline.manifest import read_pairs
    from train import Deblurrer
    from train.inference.images import read
    from train.samples import sample_grid

    rows = [pair for pair in read_pairs(str(args.organized)) if pair.split == args.split][: args.pairs]
    blur = np.stack([read(args.organized / pair.a) for pair in rows])
    sharp = np.stack([read(args.organized / pair.b) for pair in rows])
    deblur = Deblurrer(str(args.version_dir))
    deblurred = np.stack([deblur(b) for b in blur])

    def signed(x: np.ndarray) -> np.ndarray:  # sample_grid takes [-1, 1] batches
        return x.astype(np.float32) / 127.5 - 1.0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, sample_grid(signed(blur), signed(deblurred), signed(sharp)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
