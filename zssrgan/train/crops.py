"""Gradient-probability crop sampling (docs/algorithms.md, KernelGAN), reusable by every internal GAN.

Crops are drawn where the image has edges: a kernel is only observable where there is structure.
All positions are drawn up front in one vectorised call; a training step only slices.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from ..losses import to_grey, zero_border
from ..resize import imresize


def _box_blur(a: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size x size box, 'same' alignment, zeros outside; clipped at 0 against FFT round-off."""
    return np.clip(fftconvolve(a, np.ones((size, size)), mode="same"), 0.0, None) / size ** 2


def _clip_extreme(a: np.ndarray, percentile: float) -> np.ndarray:
    """Clip to [v, next value above v] and subtract v, v the percentile value: a map of the top pixels."""
    flat = a.ravel()
    pivot = int(percentile * flat.size)
    low, high = np.partition(flat, [pivot, pivot + 1])[[pivot, pivot + 1]]
    if high <= low:
        high = low + 1e-5
    return np.clip(a, low, high) - low


def gradient_map(image: np.ndarray, window: int = 5, percentile: float = 0.97) -> np.ndarray:
    """Where the strongest gradients are: |d/dy|, |d/dx| and the magnitude of the gray image, each
    clipped at the 97th percentile and normalised, summed, box-blurred, normalised to mean 1."""
    gy, gx = np.gradient(to_grey(image))
    maps = [_clip_extreme(zero_border(g, window), percentile) for g in (np.abs(gx), np.abs(gy), np.hypot(gx, gy))]
    combined = sum(m / m.sum() if m.sum() > 0 else m for m in maps)
    blurred = _box_blur(combined, window)
    return blurred / blurred.mean() if blurred.mean() > 0 else np.ones_like(blurred)


def probability_map(loss_map: np.ndarray, crop: int) -> np.ndarray:
    """Flattened probability of each pixel being a crop centre: the loss map's mean over a
    (crop/2)-box, zero within crop/2 of the border, normalised (uniform when all zero)."""
    prob = zero_border(_box_blur(loss_map, crop // 2), crop // 2).ravel()
    total = prob.sum()
    return prob / total if total > 0 else np.full(prob.size, 1.0 / prob.size)


def crop_probabilities(image: np.ndarray, crop: int, downscaled: bool = False) -> np.ndarray:
    """The crop-centre probabilities for ``image`` (HxWx3 in [0, 1], even sides when ``downscaled``).

    ``downscaled``: compute the gradients on the bicubic x0.5 image and repeat each value 2x2, as for
    KernelGAN's generator, whose crops are judged after a x2 downscale.
    """
    if downscaled:
        small = gradient_map(imresize(image, scale=0.5))
        loss_map = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[: image.shape[0], : image.shape[1]]
    else:
        loss_map = gradient_map(image)
    return probability_map(loss_map, crop)


def draw_crop_positions(prob: np.ndarray, shape: tuple[int, int], crop: int, n: int,
                        rng: np.random.Generator) -> np.ndarray:
    """``n`` top-left corners (n, 2) of crop x crop windows inside ``shape``, centres drawn from
    ``prob``; corners are even so crops stay aligned with a x2 grid."""
    rows, cols = shape
    if rows < crop or cols < crop:
        raise ValueError(f"a {crop}x{crop} crop does not fit in a {rows}x{cols} image")
    centres = rng.choice(prob.size, size=n, p=prob)
    tops = np.clip(centres // cols - crop // 2, 0, rows - crop)
    lefts = np.clip(centres % cols - crop // 2, 0, cols - crop)
    return np.stack([tops - tops % 2, lefts - lefts % 2], axis=1).astype(np.int64)


def sample_crops(image: np.ndarray, crop: int, n: int, rng: np.random.Generator,
                 downscaled: bool = False) -> np.ndarray:
    """Gradient-probability crop corners for ``image``: :func:`crop_probabilities` then
    :func:`draw_crop_positions`."""
    return draw_crop_positions(crop_probabilities(image, crop, downscaled), image.shape[:2], crop, n, rng)
