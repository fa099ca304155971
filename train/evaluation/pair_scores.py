"""What one evaluated pair scores, and how scores sum up per dataset, per source and per scene.

A pair is scored full-frame against its sharp frame: the generator's output and the blurred input alike, so the
gain over doing nothing is visible. A RealBlur source is scored after RealBlur's ECC alignment (alignment.py),
its input too, so the gain does not count the alignment itself. Pure numpy (no TensorFlow).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from train.evaluation.alignment import ecc_align, masked_psnr, masked_ssim, masked_ssim_3d
from train.evaluation.metrics import psnr, ssim, ssim_3d

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; cap per pair so means and JSON stay finite
# ssim: per channel (skimage's); ssim_3d: MATLAB's on the RGB volume, what the GoPro/HIDE papers print
METRIC_KEYS = ("psnr", "ssim", "ssim_3d", "psnr_input", "ssim_input", "ssim_3d_input")


@dataclass(frozen=True)
class PairScore:
    scene: str
    frame: str
    psnr: float
    ssim: float
    psnr_input: float
    ssim_input: float
    ssim_3d: float = float("nan")
    ssim_3d_input: float = float("nan")
    source: str | None = None
    align: str = "none"
    align_failed: int = 0  # images of this pair ECC could not align (scored unaligned)


def align_for(setting: str, source: str | None) -> str:
    """`evaluate.align` for one source: auto means RealBlur's ECC protocol for a RealBlur source, else none."""
    if setting != "auto":
        return setting
    return "ecc" if source and "realblur" in source.lower().replace("-", "").replace("_", "") else "none"


def _scores(
    image: np.ndarray, sharp: np.ndarray, crop_border: int, align: str
) -> tuple[float, float, float, int]:
    """(PSNR, SSIM, 3-D SSIM, 1 if ECC failed else 0) of one image against the ground truth, aligned first
    under ecc."""
    if align == "ecc":
        al = ecc_align(image, sharp)
        if al is not None:
            return (
                masked_psnr(al, crop_border),
                masked_ssim(al, crop_border),
                masked_ssim_3d(al, crop_border),
                0,
            )
    failed = int(align == "ecc")
    return (
        psnr(image, sharp, crop_border=crop_border),
        ssim(image, sharp, crop_border=crop_border),
        ssim_3d(image, sharp, crop_border=crop_border),
        failed,
    )


def score_pair(
    row: dict[str, Any],
    blur: np.ndarray,
    deblurred: np.ndarray,
    sharp: np.ndarray,
    crop_border: int,
    align: str = "none",
) -> PairScore:
    out_psnr, out_ssim, out_ssim_3d, out_failed = _scores(deblurred, sharp, crop_border, align)
    in_psnr, in_ssim, in_ssim_3d, in_failed = _scores(blur, sharp, crop_border, align)
    return PairScore(
        scene=str(row["scene"]),
        frame=str(row["frame"]),
        psnr=min(PSNR_CAP_DB, out_psnr),
        ssim=out_ssim,
        psnr_input=min(PSNR_CAP_DB, in_psnr),
        ssim_input=in_ssim,
        ssim_3d=out_ssim_3d,
        ssim_3d_input=in_ssim_3d,
        source=row.get("source"),
        align=align,
        align_failed=out_failed + in_failed,
    )


def _means(scores: Sequence[PairScore]) -> dict[str, Any]:
    out: dict[str, Any] = {k: float(np.mean([getattr(s, k) for s in scores])) for k in METRIC_KEYS}
    out["pairs"] = len(scores)
    return out


def summarize(scores: Sequence[PairScore], version: str, split: str, crop_border: int) -> dict[str, Any]:
    """Mean metrics over all pairs, the PSNR gain over the input, and the same means per scene and per source
    (with how each was aligned, and how many images ECC could not align)."""
    by_scene: dict[str, list[PairScore]] = collections.defaultdict(list)
    by_source: dict[str, list[PairScore]] = collections.defaultdict(list)
    for s in scores:
        by_scene[s.scene].append(s)
        by_source[s.source or ""].append(s)
    result = {"version": version, "split": split, "crop_border": crop_border, **_means(scores)}
    result["psnr_gain"] = result["psnr"] - result["psnr_input"]
    aligns = sorted({s.align for s in scores})
    result["align"] = aligns[0] if len(aligns) == 1 else "mixed"
    result["align_failed"] = sum(s.align_failed for s in scores)
    result["per_scene"] = {scene: _means(group) for scene, group in sorted(by_scene.items())}
    if any(by_source):  # manifests written before sources existed name none
        result["per_source"] = {}
        for source, group in sorted(by_source.items()):
            entry = _means(group)
            entry["psnr_gain"] = entry["psnr"] - entry["psnr_input"]
            entry["align"] = group[0].align
            entry["align_failed"] = sum(s.align_failed for s in group)
            result["per_source"][source] = entry
    return result
