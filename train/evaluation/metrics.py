"""Full-reference image metrics on uint8 RGB: PSNR and SSIM as BasicSR and Wang et al. (2004) define them.

Pure numpy (plus OpenCV's separable filter for speed), no TensorFlow: evaluation, tests and notebooks all agree.
SSIM uses an 11x11 Gaussian window with sigma 1.5, C1 = (0.01 L)^2, C2 = (0.03 L)^2, population (not sample)
covariances, is computed per channel over the window's valid region and averaged; this equals skimage's
`structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`.

`ssim_3d` is the SSIM the GoPro and HIDE papers print: MATLAB's `ssim` on the RGB array, which filters the
H x W x 3 volume with a 3-D Gaussian (11 x 11 x 11, sigma 1.5, replicated borders, channels included) and averages
the whole map (NAFNet's Python port: `_ssim_3d` in its basicsr/metrics/psnr_ssim.py). It reads higher than the
per-channel SSIM on the same images (about 0.967 vs 0.948 for NAFNet-64 on GoPro).
"""

from __future__ import annotations

import cv2
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def _pair(a: np.ndarray, b: np.ndarray, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes, crop `crop_border` pixels off every side, return float64 copies."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {a.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        if min(a.shape[:2]) <= 2 * crop_border:
            raise ValueError(f"crop_border={crop_border} leaves nothing of a {a.shape[1]}x{a.shape[0]} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, crop_border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; `inf` for identical images."""
    x, y = _pair(a, b, crop_border)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def _gaussian_filter_valid(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter keeping only pixels whose window lies fully inside the image."""
    out = cv2.sepFilter2D(img, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)
    r = kernel.shape[0] // 2
    return out[r:-r, r:-r]


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, crop_border: int = 0) -> np.ndarray:
    """Per-pixel SSIM over the window's valid region: shape (H-10, W-10) or (H-10, W-10, C)."""
    x, y = _pair(a, b, crop_border)
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {x.shape[1]}x{x.shape[0]}"
        )
    if x.ndim == 3 and x.shape[2] > 4:  # OpenCV filters at most 4 channels at once
        return np.stack(
            [ssim_map(x[..., c], y[..., c], data_range) for c in range(x.shape[2])],
            axis=-1,
        )
    kernel = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, cv2.CV_64F)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mu_x = _gaussian_filter_valid(x, kernel)
    mu_y = _gaussian_filter_valid(y, kernel)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = _gaussian_filter_valid(x * x, kernel) - mu_xx
    var_y = _gaussian_filter_valid(y * y, kernel) - mu_yy
    cov_xy = _gaussian_filter_valid(x * y, kernel) - mu_xy
    num = (2.0 * mu_xy + c1) * (2.0 * cov_xy + c2)
    den = (mu_xx + mu_yy + c1) * (var_x + var_y + c2)
    return num / den


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int = 0, data_range: float = 255.0) -> float:
    """Mean SSIM: per channel over the valid region, then averaged over channels (equal weights)."""
    return float(np.mean(ssim_map(a, b, data_range, crop_border)))


def _channel_filter(channels: int, kernel: np.ndarray) -> np.ndarray:
    """The Gaussian along the channel axis with replicated borders, as a (C, C) matrix: with only 3 channels, an
    11-tap window reaches past both ends, and replication folds those taps onto the first and last channel."""
    r = kernel.shape[0] // 2
    mix = np.zeros((channels, channels))
    for c in range(channels):
        for k, weight in enumerate(kernel):
            mix[c, min(max(c + k - r, 0), channels - 1)] += weight
    return mix


def ssim_3d_map(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, crop_border: int = 0) -> np.ndarray:
    """Per-voxel SSIM of the H x W x C volume under a 3-D Gaussian with replicated borders: shape (H, W, C)."""
    x, y = _pair(a, b, crop_border)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    kernel = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, cv2.CV_64F)
    mix = _channel_filter(x.shape[2], kernel[:, 0])

    def blur(img: np.ndarray) -> np.ndarray:
        if img.shape[2] > 4:  # OpenCV filters and mixes at most 4 channels at once
            planes = [
                cv2.sepFilter2D(img[..., c], cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
                for c in range(img.shape[2])
            ]
            return np.stack(planes, axis=-1) @ mix.T
        spatial = cv2.sepFilter2D(img, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
        if img.shape[2] == 1:
            return spatial.reshape(img.shape)
        return cv2.transform(
            spatial, mix
        )  # the channel axis: each output channel a weighted sum of the inputs

    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = blur(x * x) - mu_xx
    var_y = blur(y * y) - mu_yy
    cov_xy = blur(x * y) - mu_xy
    return ((2.0 * mu_xy + c1) * (2.0 * cov_xy + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))


def ssim_3d(a: np.ndarray, b: np.ndarray, crop_border: int = 0, data_range: float = 255.0) -> float:
    """MATLAB's SSIM of an RGB image (the 3-D Gaussian over the colour volume), what GoPro/HIDE papers report."""
    return float(np.mean(ssim_3d_map(a, b, data_range, crop_border)))
