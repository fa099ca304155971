"""Sanity check of tests/golden without PyTorch and without unpickling anything: prints a summary per file.

    python scripts/golden/check_golden.py [--golden tests/golden]

npz files load with allow_pickle=False; each .pth must hold, byte for byte, every weight of its npz (zip
checkpoints: as one of their data/N records; the legacy format: somewhere in the stream) and name every weight in
its pickle (read with pickletools, which parses opcodes and executes nothing). Exit 1 naming the first file that
fails.
"""

from __future__ import annotations

import argparse
import io
import json
import pickletools
import sys
import zipfile
from pathlib import Path

import numpy as np

# npz files that carry their weights (w/NAME) and the checkpoints that must hold them; nafnet_w8.npz carries none
# (the parity tests check nafnet_w8.pth through its outputs).
CHECKPOINTS = {"restormer_d8.npz": ["restormer_d8.pth"]}


def bad(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        bad(f"{path}: {exc}")


def pickle_strings(data: bytes | io.BytesIO) -> set[str]:
    return {arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, str)}


def check_checkpoint(path: Path, weights: dict[str, np.ndarray]) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"PK":
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            root = names[0].split("/")[0]
            records = {n: zf.read(n) for n in names if n.startswith(f"{root}/data/")}
            strings = pickle_strings(zf.read(f"{root}/data.pkl"))
        blobs = set(records.values())
        missing = [k for k, v in weights.items() if v.tobytes() not in blobs]
        kind = f"zip, root {root}/, {len(records)} storages"
    else:
        stream, strings = io.BytesIO(raw), set()
        for _ in range(5):  # magic number, protocol, system info, the object, storage keys; then raw storages
            strings |= pickle_strings(stream)
        missing = [k for k, v in weights.items() if v.tobytes() not in raw]
        kind = "legacy (not zip)"
    if missing:
        bad(f"{path}: does not hold the bytes of {missing[0]} (and {len(missing) - 1} more)")
    unnamed = [k for k in weights if k not in strings]
    if unnamed:
        bad(f"{path}: its pickle never names {unnamed[0]}")
    top = sorted(s for s in strings if s in ("params", "params_ema"))
    return f"{path.name}: {path.stat().st_size / 1e6:.2f} MB, {kind}, keys {top or 'none (bare state dict)'}"


def summarize_model(path: Path, arrays: dict[str, np.ndarray]) -> tuple[list[str], dict[str, np.ndarray]]:
    weights = {k[2:]: v for k, v in arrays.items() if k.startswith("w/")}
    lines = [
        f"{path.name}: {path.stat().st_size / 1e6:.2f} MB, settings {json.loads(str(arrays['settings']))}",
        f"  {len(weights)} weights, {sum(v.size for v in weights.values())} values, all float32: "
        f"{all(v.dtype == np.float32 for v in weights.values())}",
    ]
    for key in sorted(k for k in arrays if k.startswith("output_")):
        out, inp = arrays[key], arrays["input_" + key[len("output_") :]]
        if out.shape != inp.shape or out.dtype != np.float32 or inp.dtype != np.float32:
            bad(f"{path}: {key} {out.shape} {out.dtype} vs its input {inp.shape} {inp.dtype}")
        lines.append(
            f"  {key} {out.shape}: input in [{inp.min():.3f}, {inp.max():.3f}], max|output| {np.abs(out).max():.4f}, "
            f"max|output - input| {np.abs(out - inp).max():.4f}"
        )
    return lines, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", type=Path, default=Path("tests/golden"))
    args = parser.parse_args()
    for npz_name, checkpoints in CHECKPOINTS.items():
        arrays = load_npz(args.golden / npz_name)
        lines, weights = summarize_model(args.golden / npz_name, arrays)
        print("\n".join(lines))
        for name in checkpoints:
            print("  " + check_checkpoint(args.golden / name, weights))
    metrics = load_npz(args.golden / "metrics.npz")
    print(f"metrics.npz: {(args.golden / 'metrics.npz').stat().st_size / 1e3:.0f} kB")
    for key in sorted(metrics):
        v = metrics[key]
        if key == "provenance":
            print(f"  provenance: {json.loads(str(v))}")
        elif v.dtype == np.uint8:
            print(f"  {key}: {v.shape} uint8")
        else:
            print(f"  {key}: {v.dtype} " + " ".join(f"{x:.6f}" for x in v))
    total = sum(p.stat().st_size for p in args.golden.iterdir() if p.is_file())
    print(f"total {total / 1e6:.2f} MB in {args.golden}")


if __name__ == "__main__":
    main()
