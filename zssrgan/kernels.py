"""Blur kernels: Gaussian kernels, the DIV2KRK sampler, centring, the analytic x4 kernel,
KernelGAN's post-processing, MATLAB's bicubic kernel and validation.

Kernels are 2-D correlation kernels (as ``scipy.ndimage.correlate``), float64, summing to 1.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from .resize import CUBIC_WIDTH, cubic

MAX_KERNEL_SIDE = 64


class KernelError(ValueError):
    """A kernel that cannot be used as a blur kernel (wrong shape, non-finite, no mass, ...)."""


def anisotropic_gaussian(size: int, lambda1: float, lambda2: float, theta: float) -> np.ndarray:
    """A size x size Gaussian centred on the centre tap, with variances ``lambda1`` and ``lambda2``
    along its principal axes; the first axis is the column (x) axis rotated by ``theta`` radians
    (as the published DIV2KRK generator). Normalised to sum 1."""
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    precision = np.linalg.inv(rotation @ np.diag([lambda1, lambda2]) @ rotation.T)
    offsets = np.arange(size) - (size - 1) / 2
    grid = np.stack(np.meshgrid(offsets, offsets), axis=-1)  # (x, y) = (col, row) offsets
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", grid, precision, grid))
    return kernel / kernel.sum()


def isotropic_gaussian(size: int, sigma: float) -> np.ndarray:
    return anisotropic_gaussian(size, sigma**2, sigma**2, 0.0)


def sample_div2krk_kernel(rng: np.random.Generator, size: int = 11, min_var: float = 0.6,
                          max_var: float = 5.0, noise: float = 0.25) -> np.ndarray:
    """A random x2 kernel of the DIV2KRK protocol: anisotropic Gaussian with eigen-variances
    ~ U(min_var, max_var) and angle ~ U(0, pi), multiplicative per-tap noise ~ 1 + U(-noise, noise),
    clipped at 0 and normalised. Deterministic for a seeded ``rng``."""
    lambda1, lambda2 = rng.uniform(min_var, max_var, size=2)
    theta = rng.uniform(0.0, np.pi)
    kernel = anisotropic_gaussian(size, lambda1, lambda2, theta)
    kernel = np.clip(kernel * (1.0 + rng.uniform(-noise, noise, size=(size, size))), 0.0, None)
    return kernel / kernel.sum()


def center_of_mass(kernel: np.ndarray) -> np.ndarray:
    """(row, col) centre of mass, in taps from the top-left corner."""
    return np.asarray(ndimage.center_of_mass(np.asarray(kernel, dtype=np.float64)))


def centred_position(size, sf: float):
    """Where a kernel of ``size`` taps (per axis) centred for ``sf`` has its centre of mass:
    ``size // 2 + 0.5 * (sf - size % 2)`` (6.5 for 13 taps at x2); see :func:`kernel_shift`."""
    return size // 2 + 0.5 * (sf - size % 2)


def kernel_shift(kernel: np.ndarray, sf: float) -> np.ndarray:
    """Centre a kernel for downscaling by ``sf`` so that the SR output is pixel-aligned.

    The subsampling keeps rows 0, sf, 2sf, ...; the image content of LR pixel i sits at HR
    coordinate sf*i + (sf-1)/2, so the kernel's centre of mass must sit (sf-1)/2 past its centre
    tap: at ``shape // 2 + 0.5 * (sf - shape % 2)``. The kernel is zero-padded by
    ceil(max shift) + 1 on every side, then moved with a cubic-spline shift (whose ringing may
    leave the sum slightly off 1, as in the published code: the result is not renormalised).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    shape = np.array(kernel.shape)
    shift = centred_position(shape, sf) - center_of_mass(kernel)
    padded = np.pad(kernel, int(np.ceil(np.max(np.abs(shift)))) + 1)
    return ndimage.shift(padded, shift, order=3, mode="constant")


def analytic_x4_kernel(k2: np.ndarray, crop: bool = False) -> np.ndarray:
    """The exact kernel of degrading twice at x2 with ``k2``: for each tap k2[r, c], k2[r, c] * k2
    added at offset (2r, 2c) of a (3n-2)-sided canvas (31x31 from 11x11); that is the full
    convolution of k2 with k2 dilated by 2. ``crop=True`` drops n//2 taps per side (near zero) and
    renormalises, as KernelGAN uses it."""
    k2 = np.asarray(k2, dtype=np.float64)
    dilated = np.zeros((2 * k2.shape[0] - 1, 2 * k2.shape[1] - 1))
    dilated[::2, ::2] = k2
    k4 = signal.convolve2d(dilated, k2, mode="full")
    if not crop:
        return k4
    rows, cols = k2.shape[0] // 2, k2.shape[1] // 2
    k4 = k4[rows:k4.shape[0] - rows, cols:k4.shape[1] - cols]
    return k4 / k4.sum()


def zeroize_negligible(kernel: np.ndarray, n: int = 40) -> np.ndarray:
    """Subtract 0.75 x the (n+1)-th largest tap, clip at 0 and renormalise: keeps about the n
    strongest taps and removes the low-level haze of a GAN-estimated kernel. A kernel with at most
    n taps only loses its negative values."""
    kernel = np.asarray(kernel, dtype=np.float64)
    ordered = np.sort(kernel.ravel())
    threshold = 0.75 * ordered[-n - 1] if kernel.size > n else 0.0
    kept = np.clip(kernel - threshold, 0.0, None)
    if kept.sum() <= 0:
        raise KernelError("the kernel has no positive taps left after removing negligible values")
    return kept / kept.sum()


def postprocess_kernel(kernel: np.ndarray, sf: float, n_filtering: int = 40) -> np.ndarray:
    """KernelGAN's post-processing: zero negligible taps, then centre for ``sf`` (13x13 -> 17x17
    at x2)."""
    return kernel_shift(zeroize_negligible(kernel, n_filtering), sf)


def matlab_bicubic_kernel(sf: int) -> np.ndarray:
    """The correlation kernel equivalent to MATLAB's antialiased cubic downscaling by integer
    ``sf`` under this project's kernel convention (correlate, keep rows 0, sf, 2sf, ...).

    LR pixel m of the cubic downscale sits at HR coordinate sf*m + (sf-1)/2 and weights HR pixels
    with cubic(distance / sf) / sf; as a correlation centred on the centre tap c, tap t weighs
    cubic(((sf-1)/2 + c - t) / sf), normalised. The side is the smallest odd size holding every
    non-zero tap; its centre of mass sits where ``kernel_shift`` puts it.
    """
    if int(sf) != sf or sf < 1:
        raise ValueError(f"matlab_bicubic_kernel needs an integer scale factor >= 1, got {sf!r}")
    sf = int(sf)
    reach = int(np.ceil(CUBIC_WIDTH / 2 * sf + (sf - 1) / 2)) - 1  # furthest non-zero tap from centre
    offsets = np.arange(-reach, reach + 1)
    taps = cubic(((sf - 1) / 2 - offsets) / sf)
    taps /= taps.sum()
    return np.outer(taps, taps)


def validate_kernel(kernel, source: str = "kernel") -> np.ndarray:
    """Return ``kernel`` as a float64 2-D array, or raise KernelError naming ``source`` and the
    problem."""
    try:
        kernel = np.asarray(kernel, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise KernelError(f"{source}: not a numeric array ({error})") from None
    if kernel.ndim != 2:
        raise KernelError(f"{source}: a kernel must be a 2-D array, got shape {kernel.shape}")
    if min(kernel.shape) < 1 or max(kernel.shape) > MAX_KERNEL_SIDE:
        raise KernelError(f"{source}: kernel of shape {kernel.shape}; each side must be between 1 "
                          f"and {MAX_KERNEL_SIDE} taps")
    if not np.all(np.isfinite(kernel)):
        raise KernelError(f"{source}: the kernel contains NaN or infinite values")
    if kernel.sum() <= 0:
        raise KernelError(f"{source}: the kernel sums to {kernel.sum():.3g}; a blur kernel needs a "
                          "positive sum (ideally 1)")
    return kernel
