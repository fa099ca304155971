"""RealBlur's own evaluation (rimchang/RealBlur evaluation_RealBlur_ecc.py) on in-memory image pairs.

`score(module, gt, pred)` repeats, line for line, what the script's `evaluation_folder` does for one image:
ECC alignment (its `image_align`), masked PSNR (its `compute_psnr`) and the masked SSIM it computes inline.
`score_with_script` runs the script's `evaluation_folder` itself on the same pair written as PNG files, so that
the numbers can be checked against the script and not only against this transcription.

Shim (the only change to the reference): the script wants skimage 0.17.2, whose `structural_similarity` took
`multichannel=True` and computed in float64; today's skimage spells it `channel_axis=-1` and keeps float32 inputs
in float32. `structural_similarity_0172` restores both. The script parses its command line at import, so it is
imported with a bare argv.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import tempfile
import types
from pathlib import Path

import cv2
import numpy as np
import skimage.metrics
from reference import fail


def structural_similarity_0172(im1, im2, *, multichannel=False, **kwargs):
    """skimage 0.17.2's call signature and float64 arithmetic on today's skimage."""
    return skimage.metrics.structural_similarity(
        np.asarray(im1, np.float64),
        np.asarray(im2, np.float64),
        channel_axis=-1 if multichannel else None,
        **kwargs,
    )


def load(ref: Path) -> types.ModuleType:
    path = ref / "evaluation_RealBlur_ecc.py"
    if not path.is_file():
        fail(f"--realblur {ref}: no evaluation_RealBlur_ecc.py there (is it a clone of rimchang/RealBlur?)")
    spec = importlib.util.spec_from_file_location("evaluation_RealBlur_ecc", path)
    module = importlib.util.module_from_spec(spec)
    argv, sys.argv = sys.argv, [str(path)]
    try:
        spec.loader.exec_module(module)
    finally:
        sys.argv = argv
    module.structural_similarity = structural_similarity_0172
    return module


def masked_ssim(module, xr: np.ndarray, zr: np.ndarray, cr: np.ndarray) -> float:
    """The script's SSIM: skimage's SSIM map times the valid-pixel mask, averaged over the mask minus a border."""
    _, ssim_map = module.structural_similarity(
        xr,
        zr,
        multichannel=True,
        gaussian_weights=True,
        use_sample_covariance=False,
        data_range=1.0,
        full=True,
    )
    ssim_map = ssim_map * cr
    r = int(3.5 * 1.5 + 0.5)  # radius as in ndimage
    win_size = 2 * r + 1
    pad = (win_size - 1) // 2
    per_channel = ssim_map[pad:-pad, pad:-pad, :].sum(axis=0).sum(axis=0)
    per_channel = per_channel / cr[pad:-pad, pad:-pad, :].sum(axis=0).sum(axis=0)
    return float(np.mean(per_channel))


def score(module, gt_u8: np.ndarray, pred_u8: np.ndarray) -> dict:
    """PSNR/SSIM after ECC alignment (the script's deblurred-image path) and without it (its blurred-image path,
    whose all-ones mask makes the masked SSIM equal skimage's plain mean SSIM), plus the homography ECC found."""
    deblurred = pred_u8.astype("float32") / 255
    gt = gt_u8.astype("float32") / 255
    zr, xr, cr, warp = module.image_align(deblurred, gt)
    ones = np.ones_like(deblurred, dtype="float32")
    return {
        "psnr": float(module.compute_psnr(xr, zr, cr, data_range=1)),
        "ssim": masked_ssim(module, xr, zr, cr),
        "psnr_noalign": float(module.compute_psnr(gt, deblurred, ones, data_range=1)),
        "ssim_noalign": masked_ssim(module, gt, deblurred, ones),
        "warp": warp,
    }


def score_with_script(module, gt_u8: np.ndarray, pred_u8: np.ndarray) -> dict:
    """The script's own `evaluation_folder` on the pair as PNG files: PSNR through its compute_psnr calls (first
    the deblurred image, then the blurred one, here the same prediction), SSIM from the line it prints."""
    psnrs = []
    compute_psnr = module.compute_psnr

    def recording_psnr(*args, **kwargs):
        psnrs.append(float(compute_psnr(*args, **kwargs)))
        return psnrs[-1]

    with tempfile.TemporaryDirectory(prefix="rbeval-") as tmp:
        if "ker" in tmp or "fail" in tmp:  # the script skips any path holding these words
            return score_with_script(module, gt_u8, pred_u8)
        root = Path(tmp)
        for sub, name, image in [
            ("model", "scene001_blur_1.png", pred_u8),
            ("gt/scene001/gt", "gt_1.png", gt_u8),
        ]:
            (root / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / sub / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        (root / "gt/scene001/blur").mkdir()
        cv2.imwrite(str(root / "gt/scene001/blur/blur_1.png"), cv2.cvtColor(pred_u8, cv2.COLOR_RGB2BGR))
        (root / "result").mkdir()
        printed = io.StringIO()
        module.compute_psnr = recording_psnr
        try:
            with contextlib.redirect_stdout(printed):
                module.evaluation_folder((str(root / "model"), str(root / "gt"), str(root / "result")))
        finally:
            module.compute_psnr = compute_psnr
    last = printed.getvalue().strip().splitlines()[-1].split()
    if len(psnrs) != 2 or len(last) != 2:
        fail(f"evaluation_folder did not score the pair as expected: psnr calls {psnrs}, last line {last}", 1)
    return {"psnr": psnrs[0], "ssim": float(last[0]), "psnr_noalign": psnrs[1]}
