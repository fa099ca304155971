"""Our metrics against the reference implementations' own numbers on the same images (tests/golden/metrics.npz,
made by scripts/golden/make_metrics_golden.py): NAFNet's `_ssim_3d` (the GoPro/HIDE papers' SSIM), BasicSR's
per-channel SSIM and PSNR, and RealBlur's `evaluation_RealBlur_ecc.py` (intensity matching, ECC homography,
PSNR/SSIM over the warped region)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from train.evaluation.alignment import ecc_align, masked_psnr, masked_ssim
from train.evaluation.metrics import psnr, ssim, ssim_3d

GOLDEN = Path(__file__).resolve().parent / "golden" / "metrics.npz"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_ssim_3d_is_the_reference_ssim_3d(golden) -> None:
    """Computed in float64 here: equal to the reference run in float64; within its float32 rounding of the value
    the reference prints (it runs in float32 on the GPU)."""
    for i in range(4):
        a, b = golden[f"ssim_a_{i}"], golden[f"ssim_b_{i}"]
        assert ssim_3d(a, b) == pytest.approx(golden["ssim_3d_float64"][i], abs=1e-9)
        assert ssim_3d(a, b) == pytest.approx(golden["ssim_3d"][i], abs=2e-5)
        assert ssim_3d(a, b) - ssim(a, b) > 0.02  # the two SSIMs are different numbers on the same images


def test_per_channel_ssim_and_psnr_are_basicsrs(golden) -> None:
    for i in range(4):
        a, b = golden[f"ssim_a_{i}"], golden[f"ssim_b_{i}"]
        assert ssim(a, b) == pytest.approx(golden["ssim_channel"][i], abs=1e-9)
        assert psnr(a, b) == pytest.approx(golden["psnr"][i], abs=1e-9)


def test_realblur_protocol_gives_the_reference_scripts_numbers(golden) -> None:
    for i in range(3):
        gt, pred = golden[f"rb_gt_{i}"], golden[f"rb_pred_{i}"]
        aligned = ecc_align(pred, gt)
        assert aligned is not None
        assert masked_psnr(aligned) == pytest.approx(golden["rb_psnr"][i], abs=1e-4)
        assert masked_ssim(aligned) == pytest.approx(golden["rb_ssim"][i], abs=1e-6)
        # unaligned (the script's path for the blurred input): the plain metrics on [0, 1] floats
        assert psnr(pred, gt) == pytest.approx(golden["rb_psnr_noalign"][i], abs=1e-4)
        assert ssim(gt, pred) == pytest.approx(golden["rb_ssim_noalign"][i], abs=1e-5)
        assert golden["rb_psnr"][i] - golden["rb_psnr_noalign"][i] > 5  # alignment is what the protocol adds
