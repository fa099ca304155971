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
    from train import Deblurrer
    from train.inference.images import read
    from train.samples import sample_grid

    rows = [json.loads(line) for line in (args.organized / "manifest.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if r["split"] == args.split][: args.pairs]
    blur = np.stack([read(args.organized / r["a"]) for r in rows])
    sharp = np.stack([read(args.organized / r["b"]) for r in rows])
    deblur = Deblurrer(str(args.version_dir))
    deblurred = np.stack([deblur(b) for b in blur])

    def signed(x: np.ndarray) -> np.ndarray:  # sample_grid takes [-1, 1] batches
        return x.astype(np.float32) / 127.5 - 1.0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, sample_grid(signed(blur), signed(deblurred), signed(sharp)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
