"""Blur kernels: Gaussian kernels, the DIV2KRK sampler, centring, the analytic x4 kernel,
KernelGAN's post-processing, MATLAB's bicubic kernel and validation.

Kernels are 2-D correlation kernels (as ``scipy.ndimage.correlate``), float64, summing to 1.

The ``*_torch`` functions compute KernelGAN's post-processing and the analytic x4 kernel on the
kernel's device, without reading anything back to the host, for the semi end-to-end loop that
hands ZSSR G's kernel at every step. Their sizes cannot depend on the data, so they return a
*canvas*: a fixed-size square tensor holding the kernel NumPy would return, ``side`` taps a side
(a 0-d tensor), at its centre, zeros around it. The zero border changes nothing a kernel does:
a correlation centred on the centre tap ignores zero taps.
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Optional

import numpy as np
import torch
from scipy import ndimage, signal

from .errors import UserError
from .resize import CUBIC_WIDTH, cubic

MAX_KERNEL_SIDE = 64
SUM_TOLERANCE = 0.01  # a kernel summing further from 1 is normalised (validate_kernel)
NEGLIGIBLE_FRACTION = 0.75  # of the (n+1)-th largest tap: zeroize_negligible's threshold


class KernelError(UserError, ValueError):
    """A kernel that cannot be used as a blur kernel (wrong shape, non-finite, no mass, ...)."""


def anisotropic_gaussians(size: int, lambda1, lambda2, theta, mean=None) -> np.ndarray:
    """(N, size, size) Gaussians, each normalised to sum 1, with variances ``lambda1`` and
    ``lambda2`` (N values each) along their principal axes; the first axis is the column (x) axis
    rotated by ``theta`` radians (as the published DIV2KRK generator). ``mean`` (N, 2) is each
    Gaussian's (row, col) mean in taps from the top-left corner; default the centre tap."""
    lambda1, lambda2, theta = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (lambda1, lambda2, theta))
    cos, sin = np.cos(theta), np.sin(theta)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (N, 2, 2)
    precision = rotation @ (np.stack([1.0 / lambda1, 1.0 / lambda2], -1)[..., None] * rotation.transpose(0, 2, 1))
    mean = np.full((len(theta), 2), (size - 1) / 2) if mean is None else np.asarray(mean, dtype=np.float64)
    taps = np.arange(size, dtype=np.float64)
    dy = taps[None, :, None] - mean[:, 0, None, None]  # (N, size, 1) row offsets
    dx = taps[None, None, :] - mean[:, 1, None, None]  # (N, 1, size) column offsets
    exponent = (precision[:, 0, 0, None, None] * dx * dx + 2 * precision[:, 0, 1, None, None] * dx * dy
                + precision[:, 1, 1, None, None] * dy * dy)
    kernels = np.exp(-0.5 * exponent)
    return kernels / kernels.sum(axis=(1, 2), keepdims=True)


def anisotropic_gaussian(size: int, lambda1: float, lambda2: float, theta: float) -> np.ndarray:
    """One :func:`anisotropic_gaussians` kernel, centred on the centre tap."""
    return anisotropic_gaussians(size, lambda1, lambda2, theta)[0]


def centred_gaussians(size: int, sf: float, lambda1, lambda2, theta, tolerance: float = 1e-9) -> np.ndarray:
    """:func:`anisotropic_gaussians` whose centre of mass sits exactly where :func:`kernel_shift`
    puts it for ``sf`` (5.5 for 11 taps at x2), with no resampling: the mean starts there and moves
    by the centre of mass's remaining error (truncating a wide Gaussian at the border pulls its
    centre of mass inwards) until within ``tolerance``. Non-negative, sum 1."""
    target = np.full(2, centred_position(size, sf), dtype=np.float64)
    mean = np.tile(target, (np.atleast_1d(theta).size, 1))
    taps = np.arange(size, dtype=np.float64)
    for _ in range(100):
        kernels = anisotropic_gaussians(size, lambda1, lambda2, theta, mean)
        error = target - np.stack([kernels.sum(2) @ taps, kernels.sum(1) @ taps], -1)
        if np.abs(error).max() < tolerance:
            return kernels
        mean = mean + error
    raise RuntimeError(f"centred_gaussians: centre of mass still {np.abs(error).max():.2g} taps off after 100 steps")


def gaussian_prior_kernels(rng: np.random.Generator, n: int, size: int, sf: float, min_var: float,
                           max_var: float) -> np.ndarray:
    """``n`` random (size, size) kernels of FKP's training distribution: anisotropic Gaussians with
    eigen-variances ~ U(min_var, max_var), angle ~ U(0, pi), no noise, centred for ``sf``."""
    lambdas = rng.uniform(min_var, max_var, size=(2, n))
    return centred_gaussians(size, sf, lambdas[0], lambdas[1], rng.uniform(0.0, np.pi, size=n))


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


def kernel_covariance(kernel: np.ndarray) -> np.ndarray:
    """2x2 covariance of the kernel's positive part about its centre of mass, in (column, row)
    order (x first, as :func:`anisotropic_gaussian`'s angle); NaN without mass."""
    k = np.clip(np.asarray(kernel, dtype=np.float64), 0.0, None)
    total = k.sum()
    if total <= 0:
        return np.full((2, 2), np.nan)
    k = k / total
    rows, cols = np.mgrid[:k.shape[0], :k.shape[1]]
    dy, dx = rows - (k * rows).sum(), cols - (k * cols).sum()
    cross = (k * dx * dy).sum()
    return np.array([[(k * dx * dx).sum(), cross], [cross, (k * dy * dy).sum()]])


def covariance_width(covariance: np.ndarray) -> np.ndarray:
    """RMS of the principal standard deviations of (..., 2, 2) covariances."""
    return np.sqrt(np.trace(covariance, axis1=-2, axis2=-1) / 2)


def covariance_axes(covariance: np.ndarray) -> tuple[float, float, float]:
    """(larger, smaller principal standard deviation, angle of the larger axis in radians from the
    column axis, as :func:`anisotropic_gaussian` measures it) of a 2x2 covariance."""
    values, vectors = np.linalg.eigh(covariance)
    return (float(np.sqrt(values[1])), float(np.sqrt(max(values[0], 1e-12))),
            float(np.arctan2(vectors[1, 1], vectors[0, 1])))


def kernel_width(kernel: np.ndarray) -> float:
    """RMS of the two axes' standard deviations of the kernel's positive part: sigma for an
    isotropic Gaussian, whatever the canvas size (how wide a blur an estimate claims)."""
    return float(covariance_width(kernel_covariance(kernel)))


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


def with_x4(k2: np.ndarray) -> dict[int, np.ndarray]:
    """``{2: k2, 4: k4}``: an estimate's x2 kernel (centred for x2) and its analytic x4 kernel,
    cropped and centred for x4, as every x2-based estimator hands them on."""
    return {2: k2, 4: kernel_shift(analytic_x4_kernel(k2, crop=True), 4)}


def zeroize_negligible(kernel: np.ndarray, n: int = 40) -> np.ndarray:
    """Subtract 0.75 x the (n+1)-th largest tap, clip at 0 and renormalise: keeps about the n
    strongest taps and removes the low-level haze of a GAN-estimated kernel. A kernel with at most
    n taps only loses its negative values."""
    kernel = np.asarray(kernel, dtype=np.float64)
    ordered = np.sort(kernel.ravel())
    threshold = NEGLIGIBLE_FRACTION * ordered[-n - 1] if kernel.size > n else 0.0
    kept = np.clip(kernel - threshold, 0.0, None)
    if kept.sum() <= 0:
        raise KernelError("the kernel has no positive taps left after removing negligible values")
    return kept / kept.sum()


def postprocess_kernel(kernel: np.ndarray, sf: float, n_filtering: int = 40) -> np.ndarray:
    """KernelGAN's post-processing: zero negligible taps, then centre for ``sf`` (13x13 -> 17x17
    at x2)."""
    return kernel_shift(zeroize_negligible(kernel, n_filtering), sf)


# ---- the same on the device ----------------------------------------------------------------------

def center_of_mass_torch(kernel: torch.Tensor) -> torch.Tensor:
    """:func:`center_of_mass` of a square kernel (..., n, n) as (..., 2) = (row, col) on its device."""
    taps = torch.arange(kernel.shape[-1], dtype=kernel.dtype, device=kernel.device)
    total = kernel.sum((-2, -1))
    return torch.stack([kernel.sum(-1) @ taps / total, kernel.sum(-2) @ taps / total], -1)


def kernel_width_torch(kernel: torch.Tensor) -> torch.Tensor:
    """:func:`kernel_width` of a 2-D kernel as a 0-d tensor on its device (NaN without mass)."""
    k = kernel.clamp_min(0)
    k = k / k.sum()
    rows = torch.arange(k.shape[0], dtype=k.dtype, device=k.device)[:, None]
    cols = torch.arange(k.shape[1], dtype=k.dtype, device=k.device)[None, :]
    cy, cx = (k * rows).sum(), (k * cols).sum()
    return ((k * ((rows - cy) ** 2 + (cols - cx) ** 2)).sum() / 2).sqrt()


def zeroize_negligible_torch(kernel: torch.Tensor, n: int = 40) -> torch.Tensor:
    """:func:`zeroize_negligible` on the device. Where NumPy raises KernelError (no positive tap
    left) the result is NaN: raising would need a host read; ``ZSSRTrainer`` reports it later."""
    threshold = NEGLIGIBLE_FRACTION * kernel.flatten().topk(n + 1).values[-1] if kernel.numel() > n else 0.0
    kept = (kernel - threshold).clamp_min(0.0)
    return kept / kept.sum()


# The cubic B-spline's weights of taps floor(x) - 1 .. floor(x) + 2 are [1, f, f^2, f^3] @ this,
# with f = x - floor(x).
_CUBIC_BSPLINE_BASIS = np.array([[1, 4, 1, 0], [-3, 0, 3, 0], [3, -6, 3, 0], [-1, 3, -3, 1]]) / 6


@lru_cache(maxsize=32)
def _shift_constants(size: int, device: torch.device, dtype: torch.dtype
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What ``kernel_shift_torch`` needs on a size-tap canvas, made once, then indexed on the device:

    - prefilters (size + 1, size + 2, size): entry n maps the canvas to the spline coefficients of
      its central n taps (scipy's prefilter, ``mode="constant"``: mirror boundary) on a canvas one
      tap wider each side, with the mirrored coefficients the interpolation reads past each end;
      zero where the parity of n and size differs;
    - the B-spline basis, with a zero weight before and after (for taps out of reach);
    - offsets (size, size + 2): coefficient index - output tap.
    """
    stack = np.zeros((size + 1, size + 2, size))
    for n in range(size % 2 or 2, size + 1, 2):
        at = (size - n) // 2
        prefilter = ndimage.spline_filter1d(np.eye(n), 3, axis=0, mode="constant")
        stack[n, at + 1:at + n + 1, at:at + n] = prefilter
        stack[n, at, at:at + n] = prefilter[min(1, n - 1)]  # coefficient -1 mirrors coefficient 1
        stack[n, at + n + 1, at:at + n] = prefilter[max(n - 2, 0)]  # coefficient n mirrors n - 2
    basis = np.pad(_CUBIC_BSPLINE_BASIS, ((0, 0), (1, 1)))
    offsets = np.arange(size + 2)[None, :] - np.arange(size)[:, None]
    return tuple(torch.as_tensor(a, dtype=dtype, device=device) for a in (stack, basis, offsets))


def _shift_matrices(shift: torch.Tensor, first: torch.Tensor, last: torch.Tensor, size: int) -> torch.Tensor:
    """(2, size, size + 2): per axis, spline coefficients (as ``_shift_constants`` places them) ->
    output taps of ``ndimage.shift(order=3, mode="constant")`` of the array on canvas taps
    first..last. Output tap i interpolates at x = i - shift: floor(x) = i - ceil(shift), so every
    tap has the same weights, on coefficients i - ceil(shift) - 1 .. + 2; it is zero outside
    first..last, as is a point x outside them."""
    _, basis, offsets = _shift_constants(size, shift.device, shift.dtype)
    taps = offsets[0, :-2]
    x = taps - shift[:, None]
    inside = (x >= first) & (x <= last) & (taps >= first) & (taps <= last)
    up = shift.ceil()
    weights = ((up - shift)[:, None] ** torch.arange(4, device=shift.device)) @ basis
    which = (offsets + up[:, None, None]).long().clamp(-1, 4) + 1  # in range even for a NaN shift
    return weights.gather(1, which.flatten(1)).view(2, size, size + 2) * inside[..., None]


# Padding when ZSSR centres a post-processed canvas for its scale factor: exact as kernel_shift for
# moves up to 2 taps (a post-processed kernel, or its analytic x4, moves by about 1 at most).
RECENTRING_PAD = 3


def _widest_pad(size: int, sf: float) -> int:
    """kernel_shift's padding for the farthest centre of mass a non-negative size-tap kernel has."""
    target = centred_position(size, sf)
    return math.ceil(max(target, size - 1 - target)) + 1


def kernel_shift_torch(kernel: torch.Tensor, sf: float, side: Optional[torch.Tensor] = None,
                       max_pad: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`kernel_shift` of the canvas ``kernel`` (the whole square tensor when ``side`` is
    None) on the device: (a canvas ``max_pad`` taps wider on each side, the result's side).

    kernel_shift pads by ceil(max |shift|) + 1 and filters the padded array with its own boundary
    conditions, so the result depends on that size; here the size is a tensor, and the prefilter
    and the interpolation act on those taps of the canvas: the same result, up to rounding, for
    any padding up to ``max_pad`` (default: the most a non-negative kernel filling the canvas
    needs). A kernel needing more is shifted within ``max_pad``: the mass moved past it is lost and
    the result is only roughly centred.
    """
    size = kernel.shape[0]
    max_pad = _widest_pad(size, sf) if max_pad is None else max_pad
    if side is None:
        side = torch.full((), size, dtype=kernel.dtype, device=kernel.device)
    # centred_position(side) - centre of mass within the side taps: the same in canvas taps, as
    # both sit centred on the canvas.
    shift = centred_position(size, sf) - center_of_mass_torch(kernel)
    pad = shift.abs().amax().ceil() + 1
    side = side + 2 * torch.where(pad < max_pad, pad, max_pad)  # max_pad for a NaN kernel too
    size += 2 * max_pad
    first = (size - side) / 2
    last = first + side - 1
    prefilters = _shift_constants(size, kernel.device, kernel.dtype)[0]
    # Filter, then shift (separably); the columns of the padding are left out, as it is zero.
    prefilter = prefilters.index_select(0, side.long().reshape(1))[..., max_pad:size - max_pad]
    rows, cols = _shift_matrices(shift, first, last, size) @ prefilter
    return rows @ kernel @ cols.T, side


def postprocess_kernel_torch(kernel: torch.Tensor, sf: float, n_filtering: int = 40
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`postprocess_kernel` on the device: (canvas, side); a 13x13 kernel gives a 29x29
    canvas, enough for the farthest centre of mass it may have."""
    return kernel_shift_torch(zeroize_negligible_torch(kernel, n_filtering), sf)


def analytic_x4_kernel_torch(k2: torch.Tensor, side: Optional[torch.Tensor] = None
                             ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``analytic_x4_kernel(k2, crop=True)`` of the canvas ``k2`` on the device: (canvas, side).

    The full convolution (by FFT: a direct one of these sizes is slow on a CPU) is cropped as for a
    k2 filling the canvas, then zeroed outside what the crop of the ``side``-tap k2 keeps (half
    its side per side of the full convolution), then renormalised.
    """
    n = k2.shape[0]
    full = 3 * n - 2
    dilated = k2.new_zeros(2 * n - 1, 2 * n - 1)
    dilated[::2, ::2] = k2
    k4 = torch.fft.irfft2(torch.fft.rfft2(dilated, (full, full)) * torch.fft.rfft2(k2, (full, full)), (full, full))
    k4 = k4[n // 2:full - n // 2, n // 2:full - n // 2]
    if side is not None:
        side = 3 * side - 2 - 2 * (side // 2)
        taps = torch.arange(k4.shape[0], dtype=k4.dtype, device=k4.device)
        kept = ((taps - (k4.shape[0] - 1) / 2).abs() <= (side - 1) / 2).to(k4.dtype)
        k4 = k4 * kept[:, None] * kept
    return k4 / k4.sum(), side


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
    """Return ``kernel`` as a float64 2-D array summing to 1, or raise KernelError naming ``source``
    and the problem. A sum more than 1% off 1 is normalised with a warning: a blur keeps the mean
    brightness, and ZSSR trained on sons made brighter or darker scores near nothing."""
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
    if abs(kernel.sum() - 1.0) > SUM_TOLERANCE:
        warnings.warn(f"{source}: the kernel sums to {kernel.sum():.4g}, not 1; it is normalised to sum 1",
                      stacklevel=2)
        kernel = kernel / kernel.sum()
    return kernel
