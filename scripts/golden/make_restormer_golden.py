"""Golden Restormer fixtures from the reference PyTorch code (swz30/Restormer), run once by hand, never by CI.

Makes, in --out (tests/golden):
  restormer_d8.pth   torch.save({"params": sd})   (BasicSR's checkpoint format, zip)
  restormer_d8.npz   settings (0-d JSON str), w/<torch name> (torch layout), input_/output_ plain and rect
for Restormer(inp_channels=3, out_channels=3, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False, LayerNorm_type="WithBias", dual_pixel_task=False) with
every parameter random (torch.manual_seed(0), see reference.randomize_; `temperature` positive), eval mode,
float32 on CPU. Images are NHWC float32 in [0, 1], sides multiples of 8 (Restormer itself does not pad).

Needs PyTorch and einops (a scratch venv, not project dependencies) and a git clone of the reference:
    /tmp/torchenv/bin/python scripts/golden/make_restormer_golden.py --ref /tmp/ref/Restormer --out tests/golden
Patches: the reference package __init__ files are skipped (reference.import_reference); nothing else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from reference import (
    git_rev,
    import_reference,
    max_float64_gap,
    nchw,
    nhwc,
    randomize_,
    save_npz,
    settings_array,
    write_atomic,
)

ARCH = {
    "inp_channels": 3,
    "out_channels": 3,
    "dim": 8,
    "num_blocks": [1, 1, 1, 1],
    "num_refinement_blocks": 1,
    "heads": [1, 2, 4, 8],
    "ffn_expansion_factor": 2.66,
    "bias": False,
    "LayerNorm_type": "WithBias",
    "dual_pixel_task": False,
}
SETTINGS = {
    "dim": 8,
    "num_blocks": [1, 1, 1, 1],
    "num_refinement_blocks": 1,
    "heads": [1, 2, 4, 8],
    "ffn_expansion_factor": 2.66,
    "bias": False,
    "layer_norm": "with_bias",
}
# Kernels x 1.5 (as for NAFNet): exact vs tanh GELU then moves the output by 1.2e-3 (x 1.0: 3e-5), LayerNorm's eps
# 1e-5 vs 1e-6 by 1.2e-3, the head split order by 2.2, while float32 stays within 3e-6 of float64.
CONV_SCALE = 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, required=True, help="git clone of swz30/Restormer")
    parser.add_argument("--out", type=Path, default=Path("tests/golden"))
    args = parser.parse_args()
    rev = git_rev(args.ref)
    arch = import_reference(args.ref, "basicsr.models.archs.restormer_arch")
    torch.set_num_threads(1)  # one summation order

    torch.manual_seed(0)
    model = arch.Restormer(**ARCH)
    randomize_(model, 0, CONV_SCALE)
    model.eval()
    sd = model.state_dict()
    rng = np.random.default_rng(0)
    inputs = {
        "plain": rng.random((2, 64, 64, 3), dtype=np.float32),
        "rect": rng.random((1, 40, 56, 3), dtype=np.float32),
    }
    with torch.no_grad():
        outputs = {name: nhwc(model(nchw(x))) for name, x in inputs.items()}

    out = args.out
    write_atomic(out / "restormer_d8.pth", lambda p: torch.save({"params": sd}, p))
    arrays = {"settings": settings_array(SETTINGS)}
    arrays.update({f"w/{k}": v.numpy() for k, v in sd.items()})
    for name in inputs:
        arrays[f"input_{name}"], arrays[f"output_{name}"] = inputs[name], outputs[name]
    save_npz(out / "restormer_d8.npz", arrays)

    check(arch, out, inputs, outputs)
    print(f"reference swz30/Restormer {rev}, torch {torch.__version__}")
    print(f"parameters: {sum(v.numel() for v in sd.values())} in {len(sd)} tensors")
    for name in inputs:
        o, i = outputs[name], inputs[name]
        print(
            f"output_{name} {o.shape}: max|output| {np.abs(o).max():.4f}, "
            f"max|output - input| {np.abs(o - i).max():.4f}, std(output - input) {np.std(o - i):.4f}, "
            f"max|float32 - float64| {max_float64_gap(model, i, o):.2e}"
        )
    print(
        "files: "
        + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in sorted(out.glob("restormer_d8*")))
    )


def check(arch, out: Path, inputs: dict, outputs: dict) -> None:
    """Reload both files the way a user would and rerun: the stored outputs must come back bit for bit."""
    with np.load(out / "restormer_d8.npz", allow_pickle=False) as z:
        from_npz = {k[2:]: torch.from_numpy(z[k]) for k in z.files if k.startswith("w/")}
        stored = {name: z[f"output_{name}"] for name in inputs}
    for source, sd in {
        "restormer_d8.pth": torch.load(out / "restormer_d8.pth", weights_only=True)["params"],
        "restormer_d8.npz": from_npz,
    }.items():
        model = arch.Restormer(**ARCH)
        model.load_state_dict(sd)
        with torch.no_grad():
            for name, x in inputs.items():
                again = nhwc(model.eval()(nchw(x)))
                if not (np.array_equal(again, stored[name]) and np.array_equal(again, outputs[name])):
                    raise SystemExit(f"error: {source}: reloaded weights do not reproduce output_{name}")


if __name__ == "__main__":
    main()
