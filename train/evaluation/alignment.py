"""RealBlur's evaluation protocol: align the output to the ground truth with ECC, then score the valid region only.

RealBlur's ground truth was captured by a second camera through a beam splitter and registered to the blurred
frame, so a result can be off by a fraction of a pixel and in brightness. The authors' evaluation
(`evaluation_RealBlur_ecc.py` in rimchang/RealBlur, reused by MPRNet, Restormer and NAFNet) scores a result after:

1. intensity matching: the output z is scaled by the least-squares gain sum(x*z) / sum(z*z) towards the ground truth x;
2. ECC alignment (`cv2.findTransformECC`): a homography, on grayscale images in [0, 1], 100 iterations, eps 0,
   Gaussian prefilter 5;
3. warping the scaled output onto the ground truth (bicubic, reflected border) and a mask of the pixels the warp
   keeps (nearest, 0 outside); both images are multiplied by the mask;
4. PSNR over the masked pixels, and the SSIM map (the window of `metrics.ssim`) averaged with the mask as weights.
   RealBlur's papers print that SSIM; `masked_ssim_3d` weights the 3-D SSIM map (metrics.ssim_3d) the same way,
   so the GoPro-style figure exists for RealBlur rows too.

Pure numpy and OpenCV. A pair ECC cannot align (it raises when the images do not correlate) is reported as None,
so the caller can count it and score that pair unaligned rather than drop it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from train.evaluation.metrics import SSIM_WINDOW, ssim_3d_map, ssim_map

ECC_ITERATIONS = 100
ECC_EPS = 0.0
ECC_GAUSS_FILTER = 5


@dataclass(frozen=True)
class Aligned:
    """An output warped onto its ground truth: both masked, in 0..255 floats, and the warp that did it."""

    output: np.ndarray  # HxWx3 float64
    target: np.ndarray  # HxWx3 float64
    mask: np.ndarray  # HxW float64, 1 where the warped output has pixels
    warp: np.ndarray  # 3x3 homography, output(warp(p)) ~ target(p)
    gain: float  # the intensity matching factor applied to the output


def _gray(rgb01: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb01, cv2.COLOR_RGB2GRAY)


def ecc_align(output: np.ndarray, target: np.ndarray) -> Aligned | None:
    """Align uint8 RGB `output` to `target` as RealBlur's evaluation does; None when ECC does not converge."""
    if output.shape != target.shape:
        raise ValueError(f"images differ in shape: {output.shape} vs {target.shape}")
    z = output.astype(np.float32) / 255.0
    x = target.astype(np.float32) / 255.0
    energy = float(np.sum(z.astype(np.float64) ** 2))
    gain = float(np.sum(x.astype(np.float64) * z) / energy) if energy > 0 else 1.0
    zs = (z * gain).astype(np.float32)
    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPS)
    try:
        _, warp = cv2.findTransformECC(
            _gray(x), _gray(zs), warp, cv2.MOTION_HOMOGRAPHY, criteria, None, ECC_GAUSS_FILTER
        )
    except cv2.error:
        return None
    size = (target.shape[1], target.shape[0])
    flags = cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(zs, warp, size, flags=cv2.INTER_CUBIC + flags, borderMode=cv2.BORDER_REFLECT)
    ones = np.ones(target.shape[:2], np.float32)
    mask = cv2.warpPerspective(
        ones, warp, size, flags=cv2.INTER_NEAREST + flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    ).astype(np.float64)
    m3 = mask[..., None]
    return Aligned(
        output=warped.astype(np.float64) * 255.0 * m3,
        target=x.astype(np.float64) * 255.0 * m3,
        mask=mask,
        warp=warp.astype(np.float64),
        gain=gain,
    )


def _cropped(al: Aligned, crop_border: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if not crop_border:
        return al.output, al.target, al.mask
    window = (slice(crop_border, -crop_border), slice(crop_border, -crop_border))
    return al.output[window], al.target[window], al.mask[window]


def masked_psnr(al: Aligned, crop_border: int = 0, data_range: float = 255.0) -> float:
    """PSNR over the pixels (all channels) the mask keeps; `inf` when they agree exactly."""
    out, tgt, mask = _cropped(al, crop_border)
    valid = float(np.sum(mask)) * out.shape[2]
    if valid == 0:
        raise ValueError("the alignment leaves no valid pixel to score")
    mse = float(np.sum((tgt - out) ** 2)) / valid
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def masked_ssim(al: Aligned, crop_border: int = 0, data_range: float = 255.0) -> float:
    """The SSIM map over the window's valid region, per channel averaged with the mask as weights, then over
    channels (RealBlur's weighting of skimage's full map)."""
    out, tgt, mask = _cropped(al, crop_border)
    pad = SSIM_WINDOW // 2
    weights = mask[pad:-pad, pad:-pad, None]
    if float(np.sum(weights)) == 0:
        raise ValueError("the alignment leaves no valid pixel to score")
    smap = ssim_map(tgt, out, data_range)
    return float(np.mean(np.sum(smap * weights, axis=(0, 1)) / np.sum(weights, axis=(0, 1))))


def masked_ssim_3d(al: Aligned, crop_border: int = 0, data_range: float = 255.0) -> float:
    """The 3-D SSIM map (metrics.ssim_3d) averaged with the mask as weights."""
    out, tgt, mask = _cropped(al, crop_border)
    if float(np.sum(mask)) == 0:
        raise ValueError("the alignment leaves no valid pixel to score")
    smap = ssim_3d_map(tgt, out, data_range)
    return float(np.sum(smap * mask[..., None]) / (np.sum(mask) * smap.shape[2]))
