"""PSNR/SSIM: hand-computed values, skimage golden values, and BasicSR's reference formulation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from train.evaluation.metrics import psnr, ssim, ssim_map

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _textured_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random image and a blurred, noisy copy of it (like a GOPRO blur/sharp pair)."""
    rng = np.random.default_rng(seed)
    sharp = cv2.resize(rng.uniform(0, 255, (shape[0] // 4 + 1, shape[1] // 4 + 1, *shape[2:])), shape[1::-1])
    sharp = sharp.reshape(shape)
    blur = cv2.GaussianBlur(sharp, (0, 0), 2.0).reshape(shape) + rng.normal(0, 4, shape)
    return np.clip(sharp, 0, 255).astype(np.uint8), np.clip(blur, 0, 255).astype(np.uint8)


def _basicsr_ssim(img: np.ndarray, img2: np.ndarray) -> float:
    """BasicSR's `_ssim` (basicsr/metrics/psnr_ssim.py) per channel with a 2D filter, averaged."""
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())
    values = []
    for c in range(img.shape[2]):
        x, y = img[..., c].astype(np.float64), img2[..., c].astype(np.float64)
        mu1 = cv2.filter2D(x, -1, window)[5:-5, 5:-5]
        mu2 = cv2.filter2D(y, -1, window)[5:-5, 5:-5]
        s1 = cv2.filter2D(x**2, -1, window)[5:-5, 5:-5] - mu1**2
        s2 = cv2.filter2D(y**2, -1, window)[5:-5, 5:-5] - mu2**2
        s12 = cv2.filter2D(x * y, -1, window)[5:-5, 5:-5] - mu1 * mu2
        m = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1**2 + mu2**2 + C1) * (s1 + s2 + C2))
        values.append(m.mean())
    return float(np.mean(values))


def test_psnr_hand_computed() -> None:
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a + 10  # every pixel off by 10: MSE 100
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-12)
    assert psnr(a, b) == pytest.approx(28.130803608679102, abs=1e-12)
    c = a.copy()
    c[0, 0, 0] = 0  # one value off by 100 out of 192: MSE 10000 / 192
    assert psnr(a, c) == pytest.approx(10 * math.log10(255**2 * 192 / 10000), abs=1e-12)
    assert psnr(a, b, data_range=1.0) == pytest.approx(10 * math.log10(1 / 100), abs=1e-12)


def test_psnr_identical_is_inf_and_crop_border_drops_edges() -> None:
    a = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert psnr(a, a) == math.inf
    b = a.copy()
    b[:2] = 0
    b[:, -2:] = 255
    assert psnr(a, b) < 20
    assert psnr(a, b, crop_border=2) == math.inf
    assert psnr(a, b, crop_border=1) == psnr(a[1:-1, 1:-1], b[1:-1, 1:-1])
    with pytest.raises(ValueError, match="crop_border"):
        psnr(a, b, crop_border=10)


def test_ssim_hand_computed_on_flat_images() -> None:
    # Flat images: zero variances and covariance, so SSIM reduces to the luminance term.
    a = np.full((16, 16, 3), 100, np.uint8)
    b = np.full((16, 16, 3), 110, np.uint8)
    expected = (2 * 100 * 110 + C1) / (100**2 + 110**2 + C1)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-12)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim_map(a, b).shape == (6, 6, 3)  # valid region of an 11x11 window


def test_ssim_hand_computed_on_opposite_contrast() -> None:
    # x and y = 255 - x share the mean 127.5 and variance v, with covariance -v:
    # SSIM = (2 m^2 + C1)/(2 m^2 + C1) * (-2 v + C2)/(2 v + C2) where v is the Gaussian-weighted variance.
    x = np.zeros((11, 11), np.uint8)
    x[:, ::2] = 255
    y = 255 - x
    kernel = cv2.getGaussianKernel(11, 1.5, cv2.CV_64F)[:, 0]
    wcols = kernel[::2].sum()  # weight of the 255-valued columns
    var = 255.0**2 * wcols * (1 - wcols)
    expected = (
        (2 * (255 * wcols) * (255 * (1 - wcols)) + C1) / ((255 * wcols) ** 2 + (255 * (1 - wcols)) ** 2 + C1)
    ) * ((-2 * var + C2) / (2 * var + C2))
    assert ssim(x, y) == pytest.approx(expected, abs=1e-12)
    assert ssim(x, y) < -0.9


@pytest.mark.parametrize(
    ("shape", "seed"),
    [((48, 64, 3), 0), ((96, 128, 3), 1), ((37, 53, 3), 2), ((40, 40), 3), ((720 // 8, 1280 // 8, 3), 4)],
)
def test_golden_against_skimage(shape: tuple[int, ...], seed: int) -> None:
    a, b = _textured_pair(shape, seed)
    channel_axis = -1 if len(shape) == 3 else None
    want_ssim = structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=channel_axis,
    )
    assert ssim(a, b) == pytest.approx(want_ssim, abs=1e-10)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-10)
    assert 0.0 < ssim(a, b) < 1.0


def test_crop_border_matches_skimage_on_cropped_images() -> None:
    a, b = _textured_pair((64, 80, 3), 5)
    crop = (slice(4, -4), slice(4, -4))
    want = structural_similarity(
        a[crop],
        b[crop],
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
    )
    assert ssim(a, b, crop_border=4) == pytest.approx(want, abs=1e-10)
    assert psnr(a, b, crop_border=4) == pytest.approx(
        peak_signal_noise_ratio(a[crop], b[crop], data_range=255)
    )


def test_matches_basicsr_formulation_and_is_symmetric() -> None:
    a, b = _textured_pair((60, 70, 3), 6)
    assert ssim(a, b) == pytest.approx(_basicsr_ssim(a, b), abs=1e-10)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    assert psnr(a, b) == psnr(b, a)


def test_rejects_mismatched_or_tiny_images() -> None:
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, np.zeros((20, 21, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[:10], a[:10])
    with pytest.raises(ValueError, match="HxW"):
        psnr(np.zeros(5), np.zeros(5))
