"""A kernel-estimator plugin: the same isotropic Gaussian for every image, of a configurable width.

A baseline for estimators: a blind method that does no better with a real estimate than with a
fixed guess gains nothing from the estimate.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from zssrgan.estimators import Estimator
from zssrgan.kernels import isotropic_gaussian, kernel_shift, kernel_width, with_x4
from zssrgan.results import KernelEstimate


@dataclass
class GaussianSettings:
    """Config keys ``fixed-gaussian.sigma`` and ``fixed-gaussian.size``."""

    sigma: float = 1.0  # the x2 kernel's standard deviation in HR pixels
    size: int = 13  # the kernel's side


def fixed_gaussian(lr: np.ndarray, scale: int, cfg, callback=None,
                   settings: Optional[GaussianSettings] = None) -> KernelEstimate:
    """The x2 kernel is a centred isotropic Gaussian; x4 is derived from it (every estimator gives both)."""
    settings = settings or GaussianSettings()
    start = time.perf_counter()
    raw = isotropic_gaussian(settings.size, settings.sigma)
    kernels = with_x4(kernel_shift(raw, 2))
    return KernelEstimate(kernels, "fixed-gaussian", raw_kernel=raw,
                          diagnostics={"raw_sum": float(raw.sum()), "width": kernel_width(kernels[2])},
                          timings={"gaussian": time.perf_counter() - start})


FIXED_GAUSSIAN = Estimator(fixed_gaussian, "isotropic Gaussian of a fixed width, whatever the image (example plugin)",
                           settings=GaussianSettings)
