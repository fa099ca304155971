"""Golden image-metric values from the reference implementations, run once by hand, never by CI.

Makes tests/golden/metrics.npz (every array loads with np.load(allow_pickle=False)):
  ssim_a_i, ssim_b_i (i = 0..3)  uint8 RGB pairs, 48x64, 61x83, 64x64, 33x47 (photo crops from skimage.data for
                                 0..2, a drawn pattern with saturated and flat areas for 3; b = a blurred/noisy)
  ssim_3d, ssim_channel, psnr    (4,) float64 from megvii-research/NAFNet basicsr/metrics/psnr_ssim.py, called as
                                 its test pipeline does (use_image: the uint8 images, crop_border=0,
                                 test_y_channel=False): calculate_ssim(..., ssim3d=True) (MATLAB's SSIM on the RGB
                                 volume), the same with ssim3d=False (BasicSR's per-channel SSIM), calculate_psnr
  ssim_3d_float64                (4,) float64: the same 3-D SSIM code run in float64 (ssim_3d is float32 math,
                                 as the reference runs it on the GPU: about 1e-5 away)
  rb_gt_i, rb_pred_i (i = 0..2)  uint8 RGB 96x128 photo crops; pred = gt warped by a known small homography,
                                 brightness x 0.9 + 0.03, Gaussian blur sigma 0.6, noise sigma 0.01, rounded
  rb_psnr, rb_ssim               (3,) float64: rimchang/RealBlur evaluation_RealBlur_ecc.py after its ECC alignment
  rb_psnr_noalign, rb_ssim_noalign  (3,) float64: the same script's path for the blurred input (no alignment,
                                 all-ones mask); its SSIM line there is commented out: this is that line's value
  provenance                     0-d str, JSON: reference commits, package versions, the shims below
NAFNet's test pipeline hands BGR images to the metrics; these are RGB. Every metric here is symmetric in the
channel order (checked when the script runs).

Needs PyTorch, scikit-image, opencv (a scratch venv, not project dependencies) and git clones of both references:
    /tmp/torchenv/bin/python scripts/golden/make_metrics_golden.py --ref /tmp/ref/NAFNet \\
        --realblur /tmp/ref/RealBlur --out tests/golden
Patches: `.cuda()` is a no-op (psnr_ssim's 3-D SSIM calls it; it then runs in float32 on the CPU as it does on
the GPU); NAFNet's package __init__ files are skipped; RealBlur's structural_similarity call is shimmed to
skimage 0.17.2's signature and float64 arithmetic (realblur_reference.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import realblur_reference
import skimage.data
import torch
from reference import cuda_is_a_no_op, fail, git_rev, import_reference, save_npz, versions

SSIM_CROPS = [("astronaut", 90, 190, 48, 64), ("coffee", 150, 250, 61, 83), ("chelsea", 90, 150, 64, 64)]
RB_CROPS = [("astronaut", 20, 180), ("coffee", 200, 300), ("chelsea", 60, 120)]
RB_SIZE = (96, 128)
# (dx, dy) px, rotation in degrees, scale, perspective terms, about the crop centre
RB_WARPS = [
    ((2.5, -1.5), 0.8, 1.0, (0.0, 0.0)),
    ((-3.0, 2.0), -1.2, 1.0, (2e-5, -1e-5)),
    ((1.0, 3.5), 0.5, 1.01, (0, 0)),
]


def drawn_pattern(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Ramps, a hard edge, a flat black and a saturated white block, some texture: SSIM's edge cases."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack(
        [255 * xx / (w - 1), 255 * yy / (h - 1), 128 + 60 * np.sin(xx / 3) * np.cos(yy / 4)], axis=-1
    )
    img[:, w // 2 :, 1] = 40
    img[2:12, 3:15] = 0
    img[h - 10 : h - 2, w - 14 : w - 3] = 255
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def ssim_pairs(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    a_list = [getattr(skimage.data, name)()[y : y + h, x : x + w] for name, y, x, h, w in SSIM_CROPS]
    a_list.append(drawn_pattern(rng, 33, 47))
    degrade = [  # (Gaussian sigma or a 1x5 box, noise sigma in levels, brightness shift)
        (1.0, 3.0, 0.0),
        (None, 8.0, 0.0),
        (1.5, 2.0, 5.0),
        ("box", 4.0, 0.0),
    ]
    pairs = []
    for a, (blur, noise, shift) in zip(a_list, degrade, strict=True):
        b = a.astype(np.float64)
        if blur == "box":
            b = cv2.blur(b, (5, 1), borderType=cv2.BORDER_REFLECT)
        elif blur is not None:
            b = cv2.GaussianBlur(b, (0, 0), blur, borderType=cv2.BORDER_REFLECT)
        b = np.clip(np.rint(b + shift + rng.normal(0, noise, b.shape)), 0, 255).astype(np.uint8)
        pairs.append((np.ascontiguousarray(a), b))
    return pairs


def homography(shift, degrees: float, scale: float, perspective) -> np.ndarray:
    """Maps a prediction pixel (x, y, 1) to where it comes from in the ground-truth crop."""
    cy, cx = (RB_SIZE[0] - 1) / 2, (RB_SIZE[1] - 1) / 2
    t = np.deg2rad(degrees)
    rot = np.array(
        [[scale * np.cos(t), -scale * np.sin(t), 0], [scale * np.sin(t), scale * np.cos(t), 0], [0, 0, 1]]
    )
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    back = np.array([[1, 0, cx + shift[0]], [0, 1, cy + shift[1]], [0, 0, 1]])
    h = back @ rot @ to_centre
    h[2, :2] = perspective
    return h


def realblur_pairs(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(gt, pred, H): pred(p) = 0.9 * photo(crop origin + H p) + 0.03, blurred, noisy; the warp reads the real
    photo around the crop, so no border is invented."""
    out = []
    for (name, y, x), warp in zip(RB_CROPS, RB_WARPS, strict=True):
        photo = getattr(skimage.data, name)().astype(np.float32) / 255
        h = homography(*warp)
        offset = np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], dtype=np.float64)
        warped = cv2.warpPerspective(
            photo, offset @ h, (RB_SIZE[1], RB_SIZE[0]), flags=cv2.INTER_CUBIC + cv2.WARP_INVERSE_MAP
        )
        pred = cv2.GaussianBlur(0.9 * warped + 0.03, (0, 0), 0.6) + rng.normal(0, 0.01, warped.shape)
        gt = photo[y : y + RB_SIZE[0], x : x + RB_SIZE[1]]
        as_u8 = [np.clip(np.rint(v * 255), 0, 255).astype(np.uint8) for v in (gt, pred)]
        out.append((as_u8[0], as_u8[1], h))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, required=True, help="git clone of megvii-research/NAFNet")
    parser.add_argument("--realblur", type=Path, required=True, help="git clone of rimchang/RealBlur")
    parser.add_argument("--out", type=Path, default=Path("tests/golden"))
    args = parser.parse_args()
    revs = {
        "megvii-research/NAFNet": git_rev(args.ref),
        "rimchang/RealBlur": git_rev(args.realblur, "--realblur"),
    }
    cuda_is_a_no_op()
    metrics = import_reference(args.ref, "basicsr.metrics.psnr_ssim")
    realblur = realblur_reference.load(args.realblur)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}

    pairs = ssim_pairs(rng)
    table = {"ssim_3d": [], "ssim_channel": [], "psnr": []}
    for i, (a, b) in enumerate(pairs):
        arrays[f"ssim_a_{i}"], arrays[f"ssim_b_{i}"] = a, b
        for order in (1, -1):  # RGB as stored, then BGR as NAFNet's pipeline passes: the same values
            a_, b_ = a[..., ::order], b[..., ::order]
            row = {
                "ssim_3d": metrics.calculate_ssim(
                    a_, b_, crop_border=0, input_order="HWC", test_y_channel=False
                ),
                "ssim_channel": metrics.calculate_ssim(a_, b_, 0, "HWC", test_y_channel=False, ssim3d=False),
                "psnr": metrics.calculate_psnr(
                    a_, b_, crop_border=0, input_order="HWC", test_y_channel=False
                ),
            }
            if order == 1:
                for key, value in row.items():
                    table[key].append(float(value))
            elif any(abs(row[k] - table[k][-1]) > 1e-6 for k in row):
                fail(f"pair {i}: the metrics change with the channel order: {row} vs RGB", 1)
    table["ssim_3d_float64"] = [ssim_3d_float64(metrics, a, b) for a, b in pairs]
    arrays.update({key: np.array(values, np.float64) for key, values in table.items()})

    rb = {"psnr": [], "ssim": [], "psnr_noalign": [], "ssim_noalign": []}
    warp_errors = []
    for i, (gt, pred, h) in enumerate(realblur_pairs(rng)):
        arrays[f"rb_gt_{i}"], arrays[f"rb_pred_{i}"] = gt, pred
        mine = realblur_reference.score(realblur, gt, pred)
        script = realblur_reference.score_with_script(realblur, gt, pred)
        for key, value in script.items():
            if value != mine[key]:
                fail(f"rb pair {i}: {key} {mine[key]!r} here but {value!r} from evaluation_folder", 1)
        for key in rb:
            rb[key].append(mine[key])
        found = mine["warp"] / mine["warp"][2, 2]
        truth = np.linalg.inv(h)
        warp_errors.append(float(np.abs(found - truth / truth[2, 2]).max()))
    arrays.update({f"rb_{key}": np.array(values, np.float64) for key, values in rb.items()})

    arrays["provenance"] = np.array(
        json.dumps(
            {
                "commits": revs,
                "versions": versions(),
                "shims": [
                    "torch .cuda() is a no-op: psnr_ssim._ssim_3d runs in float32 on the CPU",
                    "RealBlur: structural_similarity(multichannel=True) -> skimage channel_axis=-1 on float64 "
                    "inputs (skimage 0.17.2 semantics)",
                ],
                "seed": 0,
            },
            sort_keys=True,
        )
    )
    save_npz(args.out / "metrics.npz", arrays)
    report(table, rb, warp_errors, revs, args.out / "metrics.npz")


def ssim_3d_float64(metrics, a: np.ndarray, b: np.ndarray) -> float:
    """The reference 3-D SSIM code in float64: its `.cuda()` calls become `.double()`, and float64 as the default
    dtype keeps the Gaussian kernel it copies into its Conv3d unrounded.

    The reference computes in float32, and E[x^2] - E[x]^2 on 0..255 values loses about 1e-5 of SSIM there; an
    implementation in float64 matches this value, not the float32 one, to many more digits."""
    tensor_cuda, module_cuda, dtype = torch.Tensor.cuda, torch.nn.Module.cuda, torch.get_default_dtype()
    torch.Tensor.cuda = lambda self, *args, **kwargs: self.double()
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self.double()
    torch.set_default_dtype(torch.float64)
    try:
        return metrics.calculate_ssim(a, b, crop_border=0, input_order="HWC", test_y_channel=False)
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = tensor_cuda, module_cuda
        torch.set_default_dtype(dtype)


def report(table: dict, rb: dict, warp_errors: list, revs: dict, path: Path) -> None:
    print(f"references: {revs}")
    for key, values in table.items():
        print(f"{key:<16} " + "  ".join(f"{v:.6f}" for v in values))
    gap = np.abs(np.subtract(table["ssim_3d"], table["ssim_3d_float64"])).max()
    print(f"ssim_3d (float32, as published) vs ssim_3d_float64: max gap {gap:.2e}")
    for key, values in rb.items():
        print(f"rb_{key:<13} " + "  ".join(f"{v:.6f}" for v in values))
    print("ECC homography vs the known one, max entry error: " + "  ".join(f"{e:.2e}" for e in warp_errors))
    print(f"{path}: {path.stat().st_size / 1e3:.0f} kB; every RealBlur value equals evaluation_folder's own")


if __name__ == "__main__":
    main()
