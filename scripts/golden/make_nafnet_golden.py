"""Golden NAFNet fixtures from the reference PyTorch code (megvii-research/NAFNet), run once by hand, never by CI.

Makes, in --out (tests/golden):
  nafnet_w8.pth         torch.save({"params": sd})                      (BasicSR's checkpoint format, zip)
  nafnet_w8_ema.pth     torch.save({"params": other_sd, "params_ema": sd})
  nafnet_w8_bare.pth    torch.save(sd)
  nafnet_w8_legacy.pth  torch.save({"params": sd}, _use_new_zipfile_serialization=False)
  nafnet_w8.npz         settings (0-d JSON str), w/<torch name> (torch layout), input_/output_ plain, odd, tlc
for NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 2], dec_blk_nums=[1, 1, 1, 1]) with
every parameter random (torch.manual_seed(0), see reference.randomize_), eval mode, float32 on CPU. Images are
NHWC float32 in [0, 1]; output_tlc comes from NAFNetLocal(train_size=(1, 3, 64, 64), fast_imp=False) with the
same weights (the reference's base size: 1.5 x train size = 96).

Needs PyTorch (a scratch venv, not a project dependency) and a git clone of the reference:
    /tmp/torchenv/bin/python scripts/golden/make_nafnet_golden.py --ref /tmp/ref/NAFNet --out tests/golden
Patches: the reference package __init__ files are skipped (reference.import_reference); nothing else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import skimage.data
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
    "img_channel": 3,
    "width": 8,
    "middle_blk_num": 1,
    "enc_blk_nums": [1, 1, 1, 2],
    "dec_blk_nums": [1, 1, 1, 1],
}
SETTINGS = {"width": 8, "enc_blocks": [1, 1, 1, 2], "middle_blocks": 1, "dec_blocks": [1, 1, 1, 1]}
TRAIN_SIZE = (1, 3, 64, 64)
# Default-init kernels x 1.0 leave NAFNetLocal within 7e-4 of NAFNet on a photo: a TLC bug could hide under a
# loose tolerance. x 1.5 separates them by about 0.1 while float32 stays within 2e-6 of float64 (x 2 blows up).
CONV_SCALE = 1.5


def random_model(arch, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = arch.NAFNet(**ARCH)
    randomize_(model, seed, CONV_SCALE)
    return model.eval()


def run(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return nhwc(model(nchw(images)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, required=True, help="git clone of megvii-research/NAFNet")
    parser.add_argument("--out", type=Path, default=Path("tests/golden"))
    args = parser.parse_args()
    rev = git_rev(args.ref)
    arch = import_reference(args.ref, "basicsr.models.archs.NAFNet_arch")
    torch.set_num_threads(1)  # one summation order

    model = random_model(arch, 0)
    other = random_model(arch, 1)
    sd, other_sd = model.state_dict(), other.state_dict()
    rng = np.random.default_rng(0)
    inputs = {
        "plain": rng.random((2, 64, 64, 3), dtype=np.float32),
        "odd": rng.random((1, 61, 83, 3), dtype=np.float32),
        # a photo, not noise: TLC matters where local statistics differ from the whole image's
        "tlc": (skimage.data.astronaut()[40:200, 150:374].astype(np.float32) / 255)[None],
    }
    outputs = {"plain": run(model, inputs["plain"]), "odd": run(model, inputs["odd"])}
    torch.manual_seed(2)  # NAFNetLocal runs one forward pass on torch.rand(train_size) to fix its pool sizes
    local = arch.NAFNetLocal(**ARCH, train_size=TRAIN_SIZE, fast_imp=False)
    local.load_state_dict(sd)
    outputs["tlc"] = run(local.eval(), inputs["tlc"])
    if np.abs(outputs["tlc"] - run(model, inputs["tlc"])).max() < 1e-2:
        raise SystemExit("error: NAFNetLocal is within 1e-2 of NAFNet: output_tlc would not test TLC")

    out = args.out
    write_atomic(out / "nafnet_w8.pth", lambda p: torch.save({"params": sd}, p))
    write_atomic(out / "nafnet_w8_ema.pth", lambda p: torch.save({"params": other_sd, "params_ema": sd}, p))
    write_atomic(out / "nafnet_w8_bare.pth", lambda p: torch.save(sd, p))
    write_atomic(
        out / "nafnet_w8_legacy.pth",
        lambda p: torch.save({"params": sd}, p, _use_new_zipfile_serialization=False),
    )
    arrays = {"settings": settings_array(SETTINGS)}
    arrays.update({f"w/{k}": v.numpy() for k, v in sd.items()})
    for name in inputs:
        arrays[f"input_{name}"], arrays[f"output_{name}"] = inputs[name], outputs[name]
    save_npz(out / "nafnet_w8.npz", arrays)

    check(arch, out, outputs, inputs)
    print(f"reference megvii-research/NAFNet {rev}, torch {torch.__version__}")
    print(f"parameters: {sum(v.numel() for v in sd.values())} in {len(sd)} tensors")
    for name in inputs:
        o, i = outputs[name], inputs[name]
        gap = max_float64_gap(local if name == "tlc" else model, i, o)
        print(
            f"output_{name} {o.shape}: max|output| {np.abs(o).max():.4f}, "
            f"max|output - input| {np.abs(o - i).max():.4f}, std(output - input) {np.std(o - i):.4f}, "
            f"max|float32 - float64| {gap:.2e}"
        )
    tlc_gap = np.abs(outputs["tlc"] - run(model, inputs["tlc"])).max()
    print(f"output_tlc vs plain NAFNet on the same input: max difference {tlc_gap:.4f}")
    print(
        "files: "
        + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in sorted(out.glob("nafnet_w8*")))
    )


def check(arch, out: Path, outputs: dict, inputs: dict) -> None:
    """Reload every file the way a user would and rerun: the stored outputs must come back bit for bit."""
    loaded = {
        "nafnet_w8.pth": torch.load(out / "nafnet_w8.pth", weights_only=True)["params"],
        "nafnet_w8_ema.pth": torch.load(out / "nafnet_w8_ema.pth", weights_only=True)["params_ema"],
        "nafnet_w8_bare.pth": torch.load(out / "nafnet_w8_bare.pth", weights_only=True),
        "nafnet_w8_legacy.pth": torch.load(out / "nafnet_w8_legacy.pth", weights_only=True)["params"],
    }
    with np.load(out / "nafnet_w8.npz", allow_pickle=False) as z:
        loaded["nafnet_w8.npz"] = {k[2:]: torch.from_numpy(z[k]) for k in z.files if k.startswith("w/")}
        stored = {name: z[f"output_{name}"] for name in outputs}
    for name in loaded:  # the zip format really is zip; the legacy one is a bare pickle stream
        if name.endswith(".pth") and ((out / name).read_bytes()[:2] == b"PK") == ("legacy" in name):
            raise SystemExit(f"error: {name} was not written in the format its name says")
    for source, sd in loaded.items():
        model = arch.NAFNet(**ARCH)
        model.load_state_dict(sd)
        again = run(model.eval(), inputs["plain"])
        if not np.array_equal(again, stored["plain"]) or not np.array_equal(again, outputs["plain"]):
            raise SystemExit(f"error: {source}: reloaded weights do not reproduce output_plain")


if __name__ == "__main__":
    main()
