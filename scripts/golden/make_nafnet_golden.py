"""Golden NAFNet fixtures from the reference PyTorch code (megvii-research/NAFNet), run once by hand, never by CI.

Makes, in --out (tests/golden):
  nafnet_w8.pth         torch.save({"params": sd})                      (BasicSR's checkpoint format, zip)
  nafnet_w8.npz         settings (0-d JSON str), input_/output_ plain, odd, tlc
for NAFNet(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 2], dec_blk_nums=[1, 1, 1, 1]) with
every parameter random (torch.manual_seed(0), see reference.randomize_), eval mode, float32 on CPU. Images are
NHWC float32 in [0, 1], every value a multiple of 1/255 (so the same frame as uint8 is exactly the reference's
input); output_tlc comes from NAFNetLocal(train_size=(1, 3, 64, 64), fast_imp=False) with the same weights (the
reference's base size: 1.5 x train size = 96). The weights are in the .pth only (the parity of the outputs is what
checks them; a second copy in the npz would double the size).
And, for the readers of the other checkpoint forms, a small NAFNet (width 4, enc [1, 1], middle 1, dec [1, 1]):
  nafnet_w4_ema.pth     torch.save({"params": other_small_sd, "params_ema": small_sd})
  nafnet_w4_bare.pth    torch.save(small_sd)
  nafnet_w4_legacy.pth  torch.save({"params": small_sd}, _use_new_zipfile_serialization=False)

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
SMALL = {"img_channel": 3, "width": 4, "middle_blk_num": 1, "enc_blk_nums": [1, 1], "dec_blk_nums": [1, 1]}
TRAIN_SIZE = (1, 3, 64, 64)
# Default-init kernels x 1.0 leave NAFNetLocal within 7e-4 of NAFNet on a photo: a TLC bug could hide under a
# loose tolerance. x 1.5 separates them by about 0.1 while float32 stays within 2e-6 of float64 (x 2 blows up).
CONV_SCALE = 1.5


def random_model(arch, seed: int, shape: dict = ARCH) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = arch.NAFNet(**shape)
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
    sd = model.state_dict()
    small_sd = random_model(arch, 1, SMALL).state_dict()
    other_small_sd = random_model(arch, 2, SMALL).state_dict()
    rng = np.random.default_rng(0)
    inputs = {  # multiples of 1/255: the uint8 frame is the same input
        "plain": (rng.integers(0, 256, (2, 64, 64, 3)) / 255).astype(np.float32),
        "odd": (rng.integers(0, 256, (1, 61, 83, 3)) / 255).astype(np.float32),
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
    write_atomic(
        out / "nafnet_w4_ema.pth", lambda p: torch.save({"params": other_small_sd, "params_ema": small_sd}, p)
    )
    write_atomic(out / "nafnet_w4_bare.pth", lambda p: torch.save(small_sd, p))
    write_atomic(
        out / "nafnet_w4_legacy.pth",
        lambda p: torch.save({"params": small_sd}, p, _use_new_zipfile_serialization=False),
    )
    arrays = {"settings": settings_array(SETTINGS)}
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
        + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in sorted(out.glob("nafnet_w*")))
    )


def check(arch, out: Path, outputs: dict, inputs: dict) -> None:
    """Reload every file the way a user would and rerun: the stored outputs must come back bit for bit."""
    loaded = {"nafnet_w8.pth": torch.load(out / "nafnet_w8.pth", weights_only=True)["params"]}
    small = {
        "nafnet_w4_ema.pth": torch.load(out / "nafnet_w4_ema.pth", weights_only=True)["params_ema"],
        "nafnet_w4_legacy.pth": torch.load(out / "nafnet_w4_legacy.pth", weights_only=True)["params"],
    }
    bare = torch.load(out / "nafnet_w4_bare.pth", weights_only=True)
    for name, sd in small.items():
        if sd.keys() != bare.keys() or not all(torch.equal(sd[k], bare[k]) for k in sd):
            raise SystemExit(f"error: {name} does not hold the small model's weights")
    with np.load(out / "nafnet_w8.npz", allow_pickle=False) as z:
        stored = {name: z[f"output_{name}"] for name in outputs}
    for name in (*loaded, *small):  # the zip format really is zip; the legacy one is a bare pickle stream
        if ((out / name).read_bytes()[:2] == b"PK") == ("legacy" in name):
            raise SystemExit(f"error: {name} was not written in the format its name says")
    for source, sd in loaded.items():
        model = arch.NAFNet(**ARCH)
        model.load_state_dict(sd)
        again = run(model.eval(), inputs["plain"])
        if not np.array_equal(again, stored["plain"]) or not np.array_equal(again, outputs["plain"]):
            raise SystemExit(f"error: {source}: reloaded weights do not reproduce output_plain")


if __name__ == "__main__":
    main()
