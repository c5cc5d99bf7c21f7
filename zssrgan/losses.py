"""Losses: KernelGAN's adversarial loss and kernel regularisers, and ZSSR's
gradient-weighted L1 (docs/algorithms.md, KernelGAN and ZSSR).

Kernels here are G's composed 13x13 correlation kernels (torch tensors); images are in [-1, 1].
The kernel terms reduce over a kernel's last two dimensions: a stack of kernels (..., 13, 13), one
per independent run, gets one value per kernel. ``dim`` (None: all) does the same for the others.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .kernels import center_of_mass_torch, centred_position, matlab_bicubic_kernel

# The fixed 8x8 bicubic kernel of KernelGAN's bicubic constraint: MATLAB's antialiased cubic x0.5
# weights, i.e. ``matlab_bicubic_kernel(2)`` without its all-zero first row and column. The published
# code spells it out as a table of numbers (with typos in a few last digits).
BICUBIC_X2 = matlab_bicubic_kernel(2)[1:, 1:]


def adversarial_l1(d_map: torch.Tensor, real: bool, dim: Optional[tuple[int, ...]] = None) -> torch.Tensor:
    """Mean |D(x) - label| against a map of ones (real) or zeros (fake).

    The KernelGAN paper calls this an LSGAN loss; its published code uses L1, which is kept here.
    """
    return (d_map - 1.0).abs().mean(dim) if real else d_map.abs().mean(dim)


def bicubic_downscale(x: torch.Tensor, kernel: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """Correlate (B, 1, H, W) single-channel images with the fixed bicubic kernel, stride 2, no padding.

    Each channel is filtered on its own. The published code expanded the kernel to a 3x3-channel
    convolution, which summed the colour channels into every output channel (a target three times the
    image); that bug is fixed here by keeping channels as a batch of single-channel images.
    """
    return F.conv2d(x, kernel[None, None], stride=stride)


def bicubic_loss(g_output: torch.Tensor, target: torch.Tensor, dim: Optional[tuple[int, ...]] = None) -> torch.Tensor:
    """MSE between G's output and the bicubic downscale of the same crop, aligned to G's output."""
    return F.mse_loss(g_output, target) if dim is None else (g_output - target).square().mean(dim)


def sum_to_one_loss(kernel: torch.Tensor) -> torch.Tensor:
    """|1 - sum(k)|: a downscaling kernel preserves the mean brightness."""
    return (1.0 - kernel.sum((-2, -1))).abs()


def boundaries_mask(size: int, penalty: float = 30.0) -> np.ndarray:
    """penalty * (1 - Gaussian / max), sigma = size, zero in the centre: the kernel's outer ring.

    The centre region is zeroed at a margin of (size - ceil(size / 2)) // 2 - 1 pixels from the edge
    (2 for a 13x13 kernel), as in the published code.
    """
    z = np.arange(size) - (size - 1) // 2
    gauss = np.exp(-(z ** 2) / (2.0 * size ** 2))
    mask = 1.0 - np.outer(gauss, gauss)  # the Gaussian's maximum is 1 at the centre
    margin = (size - (size // 2 + size % 2)) // 2 - 1
    mask[margin:size - margin, margin:size - margin] = 0.0
    return penalty * mask


def boundaries_loss(kernel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |k * mask|: pushes the kernel's border taps to zero."""
    return (kernel * mask).abs().mean((-2, -1))


def centralized_loss(kernel: torch.Tensor, sf: int = 2) -> torch.Tensor:
    """MSE between the kernel's centre of mass (row, column) and the wanted centre."""
    offset = center_of_mass_torch(kernel) - centred_position(kernel.shape[-1], sf)
    return offset.square().sum(-1) / 2.0


def sparsity_loss(kernel: torch.Tensor, power: float = 0.2) -> torch.Tensor:
    """Mean |k|^0.2: favours few significant taps."""
    return kernel.abs().pow(power).mean((-2, -1))


GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])


def to_grey(image: np.ndarray) -> np.ndarray:
    """HxW grey image (ITU-R BT.601 luma weights) of an HxWx3 image; HxW passes through."""
    return image @ GREY_WEIGHTS if image.ndim == 3 else image


def zero_border(a: np.ndarray, edge: int) -> np.ndarray:
    """A copy of the 2-D array ``a`` with its outer ``edge`` rows and columns set to zero."""
    out = np.zeros_like(a)
    out[edge:a.shape[0] - edge, edge:a.shape[1] - edge] = a[edge:a.shape[0] - edge, edge:a.shape[1] - edge]
    return out


def gradient_weight_map(image: np.ndarray, window: int = 5) -> np.ndarray:
    """ZSSR's per-pixel loss weights after KernelGAN: the gradient magnitude of the grey image,
    summed over a ``window`` x ``window`` box, zero within (window + 1) // 2 pixels of the border,
    normalised to mean 1 (HxW float32). Edges and texture weigh more than flat regions; a flat
    image gets uniform weights."""
    image = np.asarray(image, dtype=np.float64)
    magnitude = np.hypot(*np.gradient(to_grey(image)))
    boxed = ndimage.uniform_filter(magnitude, window, mode="constant") * window**2
    weights = zero_border(boxed, (window + 1) // 2)
    total = weights.sum()
    return (weights * (weights.size / total) if total > 0 else np.ones_like(weights)).astype(np.float32)


def weighted_l1(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of |output - target| * weight (plain L1 without a weight); ``weight`` broadcasts
    (N, 1, H, W) over the channels."""
    error = (output - target).abs()
    return (error * weight).mean() if weight is not None else error.mean()
