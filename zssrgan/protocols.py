"""The synthetic degradations of the blind-SR literature: how ``make-dataset`` turns one ground-truth
image into LR images whose kernels are known.

A protocol maps (ground truth, name, scale, seed) to one or more :class:`Degraded` items. Every
stored kernel explains its LR image under the project's model: LR = correlate(GT, kernel) kept at
rows and columns 0, s, 2s, ... (up to 8-bit rounding, away from the borders), and is centred for
its scale (LR pixel i at HR position s*i + (s-1)/2, MATLAB's bicubic geometry; README, Geometry).
Randomness comes from a per (image, scale) stream, so an item does not depend on which other
images or scales are made.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import numpy as np
from scipy import ndimage, signal

from .kernels import (analytic_x4_kernel, anisotropic_gaussian, isotropic_gaussian, kernel_shift,
                      matlab_bicubic_kernel, sample_div2krk_kernel)
from .resize import imresize

NOISE_STREAM = 1  # the noise's random stream, apart from the kernels' (stream 0)
NOISE_UNIT = "standard deviation in 8-bit levels (0-255), added to the LR image"

# Gaussian8 (Gu et al., CVPR 2019, "Blind Super-Resolution With Iterative Kernel Correction",
# Sec. 4): 8 isotropic Gaussian widths evenly spaced over these ranges per scale; 21x21 kernels as
# in the authors' code (whose x4 list is 1.8, 2.0, ..., 3.2).
GAUSSIAN8_WIDTHS = {2: (0.80, 1.60), 3: (1.35, 2.40), 4: (1.80, 3.20)}
GAUSSIAN8_COUNT = 8
GAUSSIAN8_SIZE = 21


@dataclass
class Degraded:
    """One LR item. ``name``: its id (the image's name, plus the kernel width where the protocol
    varies it); ``lr``: float, before noise and 8-bit rounding; ``kernel``: the whole degradation's
    kernel (None for plain bicubic); ``intermediate``: the x2 kernel a div2krk x4 item applies
    twice; ``info``: what the manifest records about it (``kernel_width``, ...)."""

    name: str
    lr: np.ndarray
    kernel: Optional[np.ndarray] = None
    intermediate: Optional[np.ndarray] = None
    info: dict = field(default_factory=dict)


def item_rng(seed: int, name: str, scale: int, stream: int = 0) -> np.random.Generator:
    """The random stream of one (image, scale) and purpose (kernels 0, noise ``NOISE_STREAM``)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), scale] + ([stream] if stream else []))


def centred_for(kernel: np.ndarray, scale: int) -> np.ndarray:
    """``kernel_shift`` for ``scale``, without the spline's tiny negative ripples (a blur is
    non-negative), renormalised."""
    centred = np.clip(kernel_shift(kernel, scale), 0.0, None)
    return centred / centred.sum()


def div2krk(gt: np.ndarray, name: str, scale: int, seed: int) -> list[Degraded]:
    """DIV2KRK (Bell-Kligler et al., NeurIPS 2019, KernelGAN): x2 = a random 11x11 anisotropic
    kernel; x4 = a freshly drawn x2 kernel applied twice, i.e. one correlation with its analytic
    kernel. The sampled kernel (mean on the centre tap, as published) is centred for x2 first:
    applied as is, it leaves every method half an HR pixel off the ground truth."""
    k2 = centred_for(sample_div2krk_kernel(item_rng(seed, name, scale)), 2)
    kernel = k2 if scale == 2 else analytic_x4_kernel(k2, crop=False)
    return [Degraded(name, imresize(gt, scale=1.0 / scale, kernel=kernel), kernel, k2 if scale == 4 else None)]


def bicubic(gt: np.ndarray, name: str, scale: int, seed: int) -> list[Degraded]:
    """MATLAB bicubic downscaling; no kernel file (the methods get its kernel equivalent)."""
    return [Degraded(name, imresize(gt, scale=1.0 / scale))]


def gaussian8_widths(scale: int) -> np.ndarray:
    """The scale's 8 widths, evenly spaced (rounded to 10 decimals: 2.4, not 2.4000000000000004)."""
    low, high = GAUSSIAN8_WIDTHS[scale]
    return np.round(np.linspace(low, high, GAUSSIAN8_COUNT), 10)


def gaussian8(gt: np.ndarray, name: str, scale: int, seed: int) -> list[Degraded]:
    """Gaussian8 (IKC, Gu et al. CVPR 2019): the image blurred by a 21x21 isotropic Gaussian of each
    of the scale's 8 widths, then bicubic-downscaled; ids ``<name>_sig<width>``. Deterministic.

    The blur pads by reflection without repeating the edge, as the authors' code. Their code then
    truncates the blurred image to 8 bits and downscales with PIL's bicubic; here it stays in
    floats and MATLAB's ``imresize`` downscales, the field's convention. The stored kernel is the
    Gaussian convolved with MATLAB's bicubic kernel: the one correlation both steps amount to.
    """
    cubic = matlab_bicubic_kernel(scale)
    items = []
    for width in gaussian8_widths(scale):
        blur = isotropic_gaussian(GAUSSIAN8_SIZE, width)
        blurred = ndimage.correlate(gt, blur[..., None], mode="mirror")
        # correlating with blur, then with cubic, is one correlation with their convolution
        kernel = signal.convolve2d(blur, cubic)
        items.append(Degraded(f"{name}_sig{width:.2f}", imresize(blurred, scale=1.0 / scale), kernel,
                              info={"kernel_width": float(width)}))
    return items


def fkp_aniso(gt: np.ndarray, name: str, scale: int, seed: int) -> list[Degraded]:
    """Anisotropic Gaussians as FKP draws its test kernels (Liang et al., CVPR 2021, "Flow-based
    Kernel Prior with Application to Blind Super-Resolution"; the authors' dataset script):
    min(4s + 3, 21) taps a side, eigen-variances ~ U(0.175 s, min(2.5 s, 10)), angle ~ U(0, pi),
    no per-tap noise. Their code centres the kernel for torch's convolution and pads circularly;
    here it is centred for the project's geometry and the borders mirror, as for div2krk."""
    rng = item_rng(seed, name, scale)
    variances = rng.uniform(0.175 * scale, min(2.5 * scale, 10.0), size=2)
    angle = rng.uniform(0.0, np.pi)
    kernel = centred_for(anisotropic_gaussian(min(4 * scale + 3, 21), *variances, angle), scale)
    return [Degraded(name, imresize(gt, scale=1.0 / scale, kernel=kernel), kernel,
                     info={"variances": [float(v) for v in variances], "angle": float(angle)})]


def add_noise(lr: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise of ``sigma`` 8-bit levels on every pixel and channel: the
    degradation model y = (x * k)down_s + n of SRMD (Zhang et al., CVPR 2018), which IKC and FKP
    share; their noise levels are quoted on [0, 255] too."""
    return lr + rng.normal(0.0, sigma / 255.0, size=lr.shape) if sigma else lr


class Protocol(NamedTuple):
    fn: Callable[[np.ndarray, str, int, int], list[Degraded]]
    scales: tuple[int, ...]
    description: str


PROTOCOLS: dict[str, Protocol] = {
    "div2krk": Protocol(div2krk, (2, 4), "random anisotropic Gaussian kernels, x4 = x2 applied twice (KernelGAN)"),
    "bicubic": Protocol(bicubic, tuple(range(2, 9)), "MATLAB bicubic downscaling"),
    "gaussian8": Protocol(gaussian8, tuple(GAUSSIAN8_WIDTHS),
                          "8 isotropic Gaussian widths per image, then bicubic (IKC)"),
    "fkp-aniso": Protocol(fkp_aniso, tuple(range(2, 9)), "random anisotropic Gaussians as FKP draws them"),
}
