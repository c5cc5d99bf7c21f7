"""Image and kernel quality metrics, computed the way the blind-SR literature reports them.

Image metrics follow the BasicSR convention: every one takes ``crop_border`` (pixels shaved from
each side) and ``test_y_channel`` (compare the Y channel of MATLAB's ``rgb2ycbcr``). Images are
HxWx3 (or HxW) floats in [0, 1]; PSNR and SSIM use a data range of 1, which gives the same numbers
as the field's 0..255 computations.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

from .kernels import center_of_mass
from .resize import imresize

# MATLAB rgb2ycbcr, Y row, for inputs in [0, 1]: Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_Y_OFFSET = 16.0 / 255.0
_KERNEL_CANVAS = 25  # the shift-invariant kernel error's canvas (benchmarks/data/kernelgan_reference)


def rgb2y(img: np.ndarray) -> np.ndarray:
    """Y channel of MATLAB's ``rgb2ycbcr`` for a [0, 1] RGB image: HxW float64 in [16/255, 235/255]."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb2y needs an HxWx3 RGB image, got shape {img.shape}")
    return img @ _Y_WEIGHTS + _Y_OFFSET


def _prepare(img: np.ndarray, ref: np.ndarray, crop_border: int, test_y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes, optionally take Y, shave ``crop_border`` pixels: the common front of every metric."""
    img, ref = np.asarray(img, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if img.shape != ref.shape:
        raise ValueError(
            f"image shapes differ: {img.shape} vs reference {ref.shape}; an SR output one pixel off the "
            f"ground truth usually means the HR image was not cropped to a multiple of the scale"
        )
    if test_y_channel:
        img, ref = rgb2y(img), rgb2y(ref)
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        if min(img.shape[:2]) <= 2 * crop_border:
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {img.shape[0]}x{img.shape[1]} image")
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        ref = ref[crop_border:-crop_border, crop_border:-crop_border]
    return img, ref


def psnr(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB for [0, 1] images (inf when identical)."""
    img, ref = _prepare(img, ref, crop_border, test_y_channel)
    mse = float(np.mean((img - ref) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """Structural similarity as the field computes it: 11x11 Gaussian window (sigma 1.5), population
    statistics, constants from a data range of 1, averaged over the valid window positions and, for
    RGB, over the channels."""
    img, ref = _prepare(img, ref, crop_border, test_y_channel)
    return float(structural_similarity(
        img, ref, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
        channel_axis=2 if img.ndim == 3 else None,
    ))


def _centre_pad(k: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``k`` zero-padded to ``shape``, centred (the extra tap of an odd margin after it)."""
    out = np.zeros(shape)
    top, left = (shape[0] - k.shape[0]) // 2, (shape[1] - k.shape[1]) // 2
    out[top:top + k.shape[0], left:left + k.shape[1]] = k
    return out


def _on_canvas(kernel: np.ndarray, size: int) -> np.ndarray:
    """Clip, normalise, centre on a size x size canvas, move the centre of mass to the canvas centre
    (cubic spline), clip and normalise again."""
    k = np.clip(np.asarray(kernel, dtype=np.float64), 0.0, None)
    if k.ndim != 2 or k.sum() <= 0:
        raise ValueError(f"a kernel must be a 2-D array with positive mass, got shape {k.shape}")
    canvas = _centre_pad(k / k.sum(), (size, size))
    centre = (size - 1) / 2.0
    canvas = ndimage.shift(canvas, np.array([centre, centre]) - center_of_mass(canvas), order=3)
    canvas = np.clip(canvas, 0.0, None)
    return canvas / canvas.sum()


def kernel_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Shift-invariant relative L2 error ||estimate - truth|| / ||truth|| after aligning both kernels'
    centres of mass on a common canvas (benchmarks/data/kernelgan_reference/README.md): an estimated
    kernel's position is ambiguous, its shape is what matters. The canvas is 25x25, grown to keep a
    4-pixel margin around larger kernels (x4 kernels are 31x31)."""
    largest = max(*np.shape(estimate), *np.shape(truth))
    size = max(_KERNEL_CANVAS, largest + 8)
    size += 1 - size % 2  # odd: the centre is a pixel
    est, ref = _on_canvas(estimate, size), _on_canvas(truth, size)
    return float(np.linalg.norm(est - ref) / np.linalg.norm(ref))


def kernel_psnr(estimate: np.ndarray, truth: np.ndarray) -> float:
    """The kernel PSNR of later blind-SR work: 20 log10(1 / sqrt(MSE)) between the kernels as they are,
    no alignment; the smaller kernel is zero-padded (centred) to the larger size."""
    est, ref = np.asarray(estimate, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if est.ndim != 2 or ref.ndim != 2:
        raise ValueError(f"kernels must be 2-D arrays, got shapes {est.shape} and {ref.shape}")
    shape = (max(est.shape[0], ref.shape[0]), max(est.shape[1], ref.shape[1]))
    mse = float(np.mean((_centre_pad(est, shape) - _centre_pad(ref, shape)) ** 2))
    return float("inf") if mse == 0 else -10.0 * np.log10(mse)


def lr_consistency(lr: np.ndarray, sr: np.ndarray, scale: int, kernel: Optional[np.ndarray] = None) -> float:
    """PSNR (RGB, dB) between the LR input and the SR output degraded back to the LR size with
    ``kernel`` (correlation + subsampling, the degradation model) or MATLAB bicubic when None: a
    no-reference check that the output explains the input."""
    lr, sr = np.asarray(lr, dtype=np.float64), np.asarray(sr, dtype=np.float64)
    if sr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale):
        raise ValueError(f"SR output {sr.shape[:2]} is not {scale}x the LR input {lr.shape[:2]}")
    back = imresize(sr, scale=1.0 / scale, kernel=kernel)
    return psnr(np.clip(back, 0.0, 1.0), lr)


def sharpness(img: np.ndarray) -> float:
    """No-reference sharpness: the mean gradient magnitude of the Y channel (central differences,
    [0, 1] units per pixel); higher is sharper. Blur lowers it, ringing and noise raise it, so read
    it beside PSNR, not alone."""
    img = np.asarray(img, dtype=np.float64)
    y = rgb2y(img) if img.ndim == 3 else img
    gy, gx = np.gradient(y)
    return float(np.mean(np.hypot(gx, gy)))


def _quantise(img: np.ndarray) -> np.ndarray:
    """Round to 8 bits, as a saved PNG would be: the field scores the saved outputs."""
    return np.round(np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * 255.0) / 255.0


def evaluate(sr: np.ndarray, lr: np.ndarray, scale: int, gt: Optional[np.ndarray] = None,
             kernel_used: Optional[np.ndarray] = None, true_kernel: Optional[np.ndarray] = None) -> dict[str, float]:
    """Every metric of the MLflow schema that the known data allows.

    The SR image is scored as its 8-bit PNG. With ground truth: ``psnr_y``, ``ssim_y``, ``psnr_rgb``,
    ``ssim_rgb`` shaving ``scale`` pixels; with both the method's kernel and the true kernel of this
    scale: ``kernel_error``, ``kernel_psnr``; always ``lr_consistency`` (degraded with the true kernel
    when known, else the method's kernel, else bicubic) and ``sharpness``.
    """
    sr = _quantise(sr)
    metrics: dict[str, float] = {}
    if gt is not None:
        for suffix, y_only in (("y", True), ("rgb", False)):
            metrics[f"psnr_{suffix}"] = psnr(sr, gt, crop_border=scale, test_y_channel=y_only)
            metrics[f"ssim_{suffix}"] = ssim(sr, gt, crop_border=scale, test_y_channel=y_only)
    if kernel_used is not None and true_kernel is not None:
        metrics["kernel_error"] = kernel_error(kernel_used, true_kernel)
        metrics["kernel_psnr"] = kernel_psnr(kernel_used, true_kernel)
    degradation = true_kernel if true_kernel is not None else kernel_used
    metrics["lr_consistency"] = lr_consistency(lr, sr, scale, degradation)
    metrics["sharpness"] = sharpness(sr)
    return metrics
