"""``auto``: the kernel estimator this project recommends (our own, not a published method).

Two facts measured on small images drive it (benchmarks/RESULTS.md). KernelGAN's estimates sit at
1.3-1.6 px wide whatever the true kernel, while ZSSR loses far more to a kernel too wide than to
one slightly too narrow. So ``auto`` reads the kernel from the LR image in closed form, with a
small learned model, and leans narrow where that reading is unsure:

- **Width.** Every LR image made by standard downscaling carries at least MATLAB's antialiasing
  cubic kernel, so the candidates form one family: that cubic kernel, correlated with an extra
  Gaussian blur of width ``t`` (``t = 0``: the cubic kernel itself). By default
  (``auto.width_from=model``) ``t`` is the one whose family kernel has the width that the
  spectral blur model (:mod:`zssrgan.blur_model`) reads from the image's power spectrum; with
  ``width_from=cue``, the one whose x2 downscale of the image keeps the image's high-band/mid-band
  energy ratio (the cross-scale cue, searched over this family). Either reading of a sharp,
  bicubic-downscaled image sits near ``t = 0`` but not always at it, and ZSSR pays dearly for the
  difference (3 dB on a bicubic-downscaled bird at t = 0.68, 0.2 dB at t = 0.38), so small
  readings are shrunk (:func:`shrink`): to 0 up to ``auto.model_zero_below`` (the cue's:
  ``auto.zero_below``), then linearly back to themselves at ``auto.model_shrink_below``
  (``auto.shrink_below``). The values were set on the classic images (benchmarks/RESULTS.md).
  At x4 the estimate is the x2 kernel applied twice (KernelGAN's convention), except the bare
  cubic kernel: MATLAB downscales by 4 with its own x4 cubic kernel, in one step.
  The cue confuses an image's own softness with blur; the model, which reads the spectrum's
  whole shape, far less so.
- **Orientation.** The blur model also reads the blur's axes from how the spectrum's fall-off
  varies with direction; when the reading is clearly anisotropic (ratio of principal standard
  deviations at least ``auto.anisotropy_min``) and some extra blur is left, the extra blur becomes
  an anisotropic Gaussian of the same RMS width ``t`` with those axes (the cubic kernel is
  isotropic, so the whole anisotropy is the extra blur's). The cue reads no axes.
- **Orientation from a GAN (optional, ``auto.use_gan=true``).** A KernelGAN run on the image (restarted
  with another seed when it collapses, ``auto.restarts`` times, or all restarts at once in
  lock-step with ``auto.restarts_lockstep``) decides the axes instead of the model: its own when
  its kernel is clearly anisotropic, none otherwise; the GAN's discriminator comes with the
  estimate. It is off by default: on 200-px images KernelGAN's axes were not
  reliable enough to help (it read isotropic bicubic blur as anisotropic, aspect 1.4-1.9).

The criterion uses the LR image alone, never a ground truth.
"""
from __future__ import annotations

import time
from functools import lru_cache
from typing import Optional

import numpy as np
from scipy import signal

from .blur_model import aspect_ratio, cached_blur_model
from .config import WIDTH_SOURCES, Config, ConfigError, set_value
from .cross_scale import matching_parameter
from .kernels import (anisotropic_gaussian, covariance_axes, kernel_covariance, kernel_width, matlab_bicubic_kernel,
                      with_x4)
from .progress import Callback
from .results import KernelEstimate
from .train.kernelgan import estimate_kernel
from .train.kernelgan_lockstep import train_lockstep

EXTRA_BLUR = np.linspace(0.0, 2.4, 49)  # the search grid of the extra Gaussian's width t
EXTRA_SIZE = 17  # taps of the extra Gaussian: +-3 sigma at the grid's widest


def principal_axes(kernel: np.ndarray) -> tuple[float, float, float]:
    """(larger, smaller standard deviation, angle in radians) of the kernel's positive part, the
    angle of the larger axis measured as :func:`~zssrgan.kernels.anisotropic_gaussian` does (from
    the column axis)."""
    return covariance_axes(kernel_covariance(kernel))


def family_kernel(t: float, aspect: float = 1.0, theta: float = 0.0) -> np.ndarray:
    """MATLAB's x2 cubic kernel correlated with an extra Gaussian of RMS width ``t`` (principal
    standard deviations in the ratio ``aspect``, the larger at angle ``theta``); centred for x2."""
    cubic = matlab_bicubic_kernel(2)
    if t <= 0:
        return cubic
    major, minor = t * np.sqrt(2 * aspect**2 / (1 + aspect**2)), t * np.sqrt(2 / (1 + aspect**2))
    extra = anisotropic_gaussian(EXTRA_SIZE, major**2, minor**2, theta)
    return signal.convolve2d(cubic, extra, mode="full")


@lru_cache(maxsize=1)
def _family_widths() -> tuple[np.ndarray, np.ndarray]:
    """(widths, t) of the grid's family kernels where the width still grows (a small extra blur
    leaves the cubic kernel's width unchanged at first)."""
    widths = np.array([kernel_width(family_kernel(t)) for t in EXTRA_BLUR])
    growing = np.r_[True, widths[1:] > np.maximum.accumulate(widths)[:-1] + 1e-9]
    return widths[growing], EXTRA_BLUR[growing]


def extra_blur_for_width(width: float) -> float:
    """The ``t`` whose (isotropic) family kernel is ``width`` wide, clamped to the grid's ends."""
    return float(np.interp(width, *_family_widths()))


def read_blur(lr: np.ndarray, cfg: Config) -> tuple[float, float, float, dict[str, float]]:
    """The shrunk extra blur ``t``, its aspect and angle, as ``cfg.auto.width_from`` reads them from
    ``lr``, and what was read. The model's axes apply to a clearly anisotropic blur (aspect at least
    ``auto.anisotropy_min``) that keeps some extra blur; the cue reads no axes."""
    auto = cfg.auto
    if auto.width_from == "model":
        reading = cached_blur_model(auto.blur_model).read(lr)
        raw = extra_blur_for_width(reading.width)
        t = shrink(raw, auto.model_zero_below, auto.model_shrink_below)
        aspect, theta = 1.0, 0.0
        if t > 0 and reading.aspect >= auto.anisotropy_min:  # the cubic kernel is isotropic: all of it is t's
            aspect, theta = aspect_ratio(t * t, reading.anisotropy), reading.angle
        return t, aspect, theta, {"model_width": reading.width, "model_aspect": reading.aspect,
                                  "model_angle": reading.angle, "raw_extra_blur": raw}
    if auto.width_from == "cue":
        raw, ratio = matching_parameter(lr, family_kernel, EXTRA_BLUR)
        return shrink(raw, auto.zero_below, auto.shrink_below), 1.0, 0.0, {"cue": raw, "raw_extra_blur": raw,
                                                                          "band_ratio": ratio}
    raise ConfigError(f"auto.width_from: unknown source {auto.width_from!r}; choose one of: {', '.join(WIDTH_SOURCES)}")


def shrink(t: float, zero_below: float, shrink_below: float) -> float:
    """0 up to ``zero_below``, ``t`` from ``shrink_below``, linear in between."""
    if not 0 <= zero_below < shrink_below:
        raise ConfigError(f"auto's shrink needs 0 <= zero_below < shrink_below, got {zero_below} and {shrink_below}")
    if t >= shrink_below:
        return t
    return max(0.0, shrink_below * (t - zero_below) / (shrink_below - zero_below))


def _sound_kernelgan(lr: np.ndarray, cfg: Config, callback: Optional[Callback]
                     ) -> tuple[Optional[KernelEstimate], int]:
    """The first KernelGAN run that did not collapse (seeds ``seed``, ``seed + 1``, ...), and the
    number of runs made: one after another, or all at once in lock-step (``auto.restarts_lockstep``;
    ``callback`` then sees every run's steps)."""
    from .estimators import kernelgan_failure  # the table imports this module

    seeds = [cfg.seed + attempt for attempt in range(cfg.auto.restarts + 1)]
    if cfg.auto.restarts_lockstep:
        estimates = train_lockstep(lr, cfg, seeds, callbacks=[callback] * len(seeds))
        return next((e for e in estimates if kernelgan_failure(e) is None), None), len(seeds)
    for attempt, seed in enumerate(seeds):
        estimate = estimate_kernel(lr, 2, set_value(cfg, "seed", seed), callback)
        if kernelgan_failure(estimate) is None:
            return estimate, attempt + 1
    return None, len(seeds)


def auto_estimate(lr: np.ndarray, scale: int, cfg: Config, callback: Optional[Callback] = None) -> KernelEstimate:
    """The ``auto`` estimate of ``lr``'s kernel (see the module's docstring)."""
    start = time.perf_counter()
    t, aspect, theta, reading = read_blur(lr, cfg)
    read_seconds = time.perf_counter() - start
    gan, runs = _sound_kernelgan(lr, cfg, callback) if cfg.auto.use_gan else (None, 0)
    if gan is not None:
        aspect, theta = 1.0, 0.0
        major, minor, angle = principal_axes(gan.kernels[2])
        if major / minor >= cfg.auto.anisotropy_min:
            aspect, theta = major / minor, angle
    k2 = family_kernel(t, aspect, theta)
    raw = reading["raw_extra_blur"]
    diagnostics = {"raw_sum": float(k2.sum()), "width": kernel_width(k2), "extra_blur": t, **reading,
                   "aspect": aspect, "theta": theta, "gan_runs": float(runs),
                   "gan_sound": float(gan is not None), "clamped": float(raw <= EXTRA_BLUR[0] or raw >= EXTRA_BLUR[-1])}
    if gan is not None:
        diagnostics["gan_width"] = gan.diagnostics["width"]
    timings = {f"width_{cfg.auto.width_from}": read_seconds, "auto": time.perf_counter() - start,
               **({"kernelgan": gan.timings.get("kernelgan", 0.0)} if gan is not None else {})}
    # the bare cubic kernel stands for MATLAB's downscaling, whose x4 kernel is its own, in one step
    kernels = {2: k2, 4: matlab_bicubic_kernel(4)} if t <= 0 else with_x4(k2)
    return KernelEstimate(kernels, "auto", raw_kernel=k2, discriminator=gan.discriminator if gan else None,
                          diagnostics=diagnostics, history=gan.history if gan else {}, timings=timings)
