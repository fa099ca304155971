"""RealBlur's ECC protocol (train/evaluation/alignment.py) on known shifts, gains and borders, against skimage's SSIM map."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from train.evaluation.alignment import ecc_align, masked_psnr, masked_ssim
from train.evaluation.metrics import psnr
from train.evaluation.pair_scores import align_for, score_pair


def texture(seed: int = 0, size: tuple[int, int] = (128, 96)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (size[1], size[0], 3)).astype(np.float32), (0, 0), 2.0)
    return np.clip((noise - noise.min()) / np.ptp(noise) * 215 + 20, 0, 255).round().astype(np.uint8)


def shifted(image: np.ndarray, dx: float, dy: float, gain: float = 1.0) -> np.ndarray:
    """`image` moved by (dx, dy) pixels (output[y, x] = image[y - dy, x - dx]) and scaled by `gain`."""
    move = np.float32([[1, 0, dx], [0, 1, dy]])
    size = (image.shape[1], image.shape[0])
    out = cv2.warpAffine(
        image.astype(np.float32), move, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    return np.clip(out * gain, 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize(("dx", "dy"), [(0.6, -0.35), (-0.25, 0.4), (1.5, 0.0)])
def test_a_known_subpixel_shift_is_recovered(dx: float, dy: float) -> None:
    target = texture()
    output = shifted(target, dx, dy)
    aligned = ecc_align(output, target)
    assert aligned is not None
    # output(warp(p)) ~ target(p): over a grid of the frame, the homography moves points by the shift (bicubic
    # resampling of a shifted texture biases ECC by a few hundredths of a pixel), and hardly bends.
    ys, xs = np.mgrid[0:96:8, 0:128:8]
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    moved = aligned.warp @ points
    moved = moved[:2] / moved[2]
    displacement = moved - points[:2]
    assert displacement.mean(axis=1) == pytest.approx([dx, dy], abs=0.06)
    assert np.abs(displacement - displacement.mean(axis=1, keepdims=True)).max() < 0.25
    assert aligned.gain == pytest.approx(1.0, abs=0.01)
    before, after = psnr(output, target), masked_psnr(aligned)
    assert before < 35 and after > before + 10, (before, after)
    assert masked_ssim(aligned) > 0.995


def test_intensity_is_matched_before_alignment() -> None:
    target = texture(1)
    aligned = ecc_align(shifted(target, 0.3, 0.2, gain=0.8), target)
    assert aligned is not None and aligned.gain == pytest.approx(1.25, rel=0.01)
    assert masked_psnr(aligned) > 40


def test_the_mask_drops_what_the_warp_brings_in_from_outside() -> None:
    """Shifted right by 2.5 px: the aligned output has no pixels for the last columns; they are not scored."""
    target = texture(2)
    aligned = ecc_align(shifted(target, 2.5, 0.0), target)
    assert aligned is not None
    assert aligned.mask[:, :40].min() == 1 and aligned.mask[:, -1].max() == 0
    assert 1 <= int((aligned.mask[48] == 0).sum()) <= 4
    assert np.all(aligned.output[aligned.mask == 0] == 0) and np.all(aligned.target[aligned.mask == 0] == 0)


def test_masked_scores_match_an_independent_computation() -> None:
    """PSNR over masked pixels and skimage's full SSIM map weighted by the mask inside its valid region."""
    target = texture(3)
    output = shifted(cv2.GaussianBlur(target, (0, 0), 1.0), 1.2, -0.7)
    al = ecc_align(output, target)
    assert al is not None
    valid = al.mask.sum() * 3
    want_psnr = 10 * np.log10(255.0**2 / (np.sum((al.target - al.output) ** 2) / valid))
    assert masked_psnr(al) == pytest.approx(want_psnr, rel=1e-12)
    _, smap = structural_similarity(
        al.target,
        al.output,
        channel_axis=-1,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        full=True,
    )
    pad = 5
    weights = al.mask[pad:-pad, pad:-pad, None]
    want_ssim = np.mean(
        np.sum(smap[pad:-pad, pad:-pad] * weights, axis=(0, 1)) / np.sum(weights, axis=(0, 1))
    )
    assert masked_ssim(al) == pytest.approx(want_ssim, abs=1e-9)
    cropped = masked_psnr(al, crop_border=4)
    assert cropped != masked_psnr(al) and np.isfinite(cropped)


def test_uncorrelated_images_are_reported_and_scored_unaligned() -> None:
    target = texture(4)
    flat = np.full_like(target, 128)
    assert ecc_align(flat, target) is None
    row = {"scene": "s", "frame": "1", "source": "RealBlur_J"}
    blurred = shifted(cv2.GaussianBlur(target, (0, 0), 1.5), 0.5, 0.5)
    score = score_pair(row, blurred, flat, target, crop_border=0, align="ecc")
    assert score.align == "ecc" and score.align_failed == 1  # the flat output; the blurred input aligned
    assert score.psnr == pytest.approx(psnr(flat, target))
    assert score.psnr_input == pytest.approx(masked_psnr(ecc_align(blurred, target)))


def test_auto_alignment_is_ecc_for_realblur_sources_only() -> None:
    assert [
        align_for("auto", s) for s in ("RealBlur_J", "realblur-r", "RealBlur", "GOPRO_Large", "HIDE", None)
    ] == [
        "ecc",
        "ecc",
        "ecc",
        "none",
        "none",
        "none",
    ]
    assert align_for("none", "RealBlur_J") == "none" and align_for("ecc", "HIDE") == "ecc"
