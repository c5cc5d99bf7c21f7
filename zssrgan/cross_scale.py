"""The cross-scale spectral cue: a closed-form width estimate from the LR image alone.

KernelGAN's premise (Bell-Kligler, Shocher and Irani, NeurIPS 2019) is that the right kernel makes
the image's x2 downscale look like the image itself. This module measures that premise directly
on one statistic: the energy of the upper half-band (0.25-0.5 cycles/px) over the band below it.
Blurring with a wider Gaussian before downscaling lowers that ratio steadily, so the isotropic
Gaussian whose x2 downscale of the image keeps the image's own ratio is found by a 1-D search.
It models width only (no orientation) and reads "0.4 or less" at the bottom of its range; in
return it needs no training and takes about 0.1 s.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import InputError
from .kernels import isotropic_gaussian, kernel_shift
from .resize import imresize
from .spectrum import power_spectrum

SIGMAS = np.linspace(0.4, 2.5, 43)  # the search range; the ends clamp
KERNEL_SIZE = 13


def band_ratio(img: np.ndarray) -> float:
    """Energy of the upper half-band (0.25-0.5 cycles/px) over the band below it (Y channel,
    Hann-windowed)."""
    power, radius, _ = power_spectrum(img)
    low = power[(radius > 0.125) & (radius <= 0.25)].sum()
    if low <= 0:
        raise InputError("the image has no mid-band energy (a flat image): the cross-scale cue cannot judge it")
    return float(power[(radius > 0.25) & (radius <= 0.5)].sum() / low)


def matching_parameter(lr: np.ndarray, family: Callable[[float], np.ndarray], grid: np.ndarray
                       ) -> tuple[float, float]:
    """(p, the image's band ratio): the parameter of the kernel ``family(p)`` (blurrier as p grows,
    centred for x2) whose x2 downscale of ``lr`` keeps ``lr``'s band ratio, searched over ``grid``
    (the ends clamp). The ratios are made non-increasing along the grid first (a running minimum
    smooths the flat start of a family), so the search is a monotone interpolation."""
    target = band_ratio(lr)
    ratios = np.minimum.accumulate([band_ratio(imresize(lr, scale=0.5, kernel=family(p))) for p in grid])
    return float(np.interp(target, ratios[::-1], grid[::-1])), target


def cross_scale_sigma(lr: np.ndarray) -> tuple[float, float]:
    """(sigma, the image's band ratio) over isotropic Gaussians :data:`SIGMAS` (see
    :func:`matching_parameter`)."""
    return matching_parameter(lr, lambda s: kernel_shift(isotropic_gaussian(KERNEL_SIZE, s), 2), SIGMAS)
