"""The explicit table of kernel estimators: the stage every blind method depends on.

An estimator is a plain function ``(lr, scale, cfg, callback=None) -> KernelEstimate``: ``lr`` is
an HxWx3 float image in [0, 1], ``scale`` (2 or 4) the kernel the caller needs (every estimator
returns both, x4 derived from x2), ``callback(phase, step, values)`` receives training values. A
row may also name a ``trainer`` factory ``(lr, cfg, device, rng) -> trainer`` with
:class:`~zssrgan.train.kernelgan.KernelGANTrainer`'s step interface, which the ZSSRGAN modes drive
step by step (``zssrgan-e2e`` needs one), and a ``check`` that turns a failed estimate into a
reason. :func:`run_estimator` runs the one ``cfg.estimator`` names and refuses a failed estimate
with :class:`EstimateFailed`, so no method ever uses it silently. Other packages add estimators
as plugins (:mod:`zssrgan.plugins`, docs/plugins.md).
"""
from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from .auto import auto_estimate
from .config import Config
from .cross_scale import KERNEL_SIZE, SIGMAS, cross_scale_sigma
from .errors import UserError
from .kernels import isotropic_gaussian, kernel_shift, kernel_width, with_x4
from .plugins import Kind, resolve, settings_keyword
from .progress import Callback, History
from .results import KernelEstimate
from .train.kernelgan import estimate_kernel, kernelgan_trainer, train_discriminator
from .train.kernelgan_fkp import estimate_kernel_fkp, fkp_trainer

EstimatorFn = Callable[..., KernelEstimate]
TrainerFactory = Callable[[np.ndarray, Config, Any, np.random.Generator], Any]

# A KernelGAN run has collapsed when G's raw kernel no longer sums to about 1 (the sum-to-one term
# pulls it there within the first steps of any sound run; collapsed runs sit at 0.0005-0.05, and
# post-processing would renormalise the remains into scattered taps), or when G never became
# bicubic-like, so the adversarial phase never started from a plausible kernel.
MIN_RAW_SUM = 0.25


class Estimator(NamedTuple):
    fn: EstimatorFn
    description: str
    trainer: Optional[TrainerFactory] = None  # trains G and D step by step (ZSSRGAN serial, e2e)
    check: Optional[Callable[[KernelEstimate], Optional[str]]] = None  # a reason when the estimate failed
    reads: tuple[str, ...] = ()  # config sections it reads (dotted-key prefixes): its estimates' job key
    settings: Optional[type] = None  # a plugin's settings dataclass: config keys "<name>.<field>"


class EstimatorError(UserError, ValueError):
    """An unknown estimator name, or one that cannot serve the method asked for."""


class EstimateFailed(UserError, RuntimeError):
    """The estimator ran but its estimate is unusable (collapsed); ``diagnostics`` say why. A known
    outcome on some images, not a bug: the command line reports it in one line."""

    def __init__(self, message: str, diagnostics: dict[str, float]) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


# KernelGAN steps under which a run that missed the bicubic phase is called too short: with the
# quick preset, the phase ended after 214-284 steps on 4 of 5 classic images (150 px LR, seed 0)
SHORT_RUN = 300


def kernelgan_failure(estimate: KernelEstimate) -> Optional[str]:
    """Why a KernelGAN estimate collapsed (see :data:`MIN_RAW_SUM`), or None."""
    d = estimate.diagnostics
    steps = len(estimate.history.get("kernelgan", []))
    if not d["raw_sum"] >= MIN_RAW_SUM:
        reason = (f"G's raw kernel sums to {d['raw_sum']:.4g} (a sound run keeps it near 1; below {MIN_RAW_SUM} the "
                  "post-processed kernel is noise)")
    elif not d["bicubic_phase_ended"]:
        reason = (f"G never became bicubic-like in its {steps} steps, so its bicubic phase never ended and the "
                  "adversarial phase never started from a plausible kernel")
    else:
        return None
    short = not d["bicubic_phase_ended"] and steps < SHORT_RUN
    return (f"KernelGAN collapsed: {reason}"
            + (f" (a run of {steps} steps rarely gets past the bicubic phase: raise kernelgan.iters; the quick "
               "preset trains 600)" if short else ""))


def cross_scale_estimate(lr: np.ndarray, scale: int, cfg: Config, callback: Optional[Callback] = None
                         ) -> KernelEstimate:
    """The isotropic Gaussian of the image's cross-scale spectral cue (:mod:`zssrgan.cross_scale`)."""
    start = time.perf_counter()
    sigma, ratio = cross_scale_sigma(lr)
    raw = isotropic_gaussian(KERNEL_SIZE, sigma)
    kernels = with_x4(kernel_shift(raw, 2))
    diagnostics = {"raw_sum": float(raw.sum()), "width": kernel_width(kernels[2]), "sigma": sigma,
                   "band_ratio": ratio, "clamped": float(sigma <= SIGMAS[0] or sigma >= SIGMAS[-1])}
    return KernelEstimate(kernels, "cross-scale", raw_kernel=raw, diagnostics=diagnostics,
                          timings={"cross_scale": time.perf_counter() - start})


ESTIMATORS: dict[str, Estimator] = {
    "kernelgan": Estimator(estimate_kernel, "KernelGAN (published): an image-specific GAN's deep linear generator",
                           trainer=kernelgan_trainer, check=kernelgan_failure, reads=("kernelgan.",)),
    "kernelgan-fkp": Estimator(estimate_kernel_fkp, "KernelGAN-FKP (published): a frozen flow-based kernel prior's "
                               "latent against a WGAN-GP critic", trainer=fkp_trainer, reads=("fkp.",)),
    "cross-scale": Estimator(cross_scale_estimate, "isotropic Gaussian that keeps the image's band ratio "
                             "across scales (closed form, no training)"),
    "auto": Estimator(auto_estimate, "recommended (ours): cubic kernel plus the extra blur whose width and axes "
                      "a learned spectral model reads (closed form unless auto.use_gan)", reads=("auto.", "kernelgan.")),
}


PLUGINS = Kind("kernel estimator", "zssrgan.estimators", ESTIMATORS, Estimator, ("lr", "scale", "cfg"),
               ("callback",), KernelEstimate, EstimatorError)


def get_estimator(name: str) -> Estimator:
    """The built-in estimator ``name``, else the plugin of that name (:mod:`zssrgan.plugins`)."""
    return resolve(PLUGINS, name)


def run_estimator(lr: np.ndarray, scale: int, cfg: Config, callback: Optional[Callback] = None,
                  discriminator: bool = False) -> KernelEstimate:
    """The estimate of ``cfg.estimator`` for ``lr``; :class:`EstimateFailed` when it failed its check
    (with ``cfg.strict_estimates``; else diagnostic ``failed`` is 1).
    ``discriminator=True``: an estimator that trains no discriminator gets KernelGAN's, trained
    against the estimated kernel (what ``zssrgan-fixed`` and ``zssrgan-serial`` need)."""
    if scale not in (2, 4):
        raise ValueError(f"kernel estimates are for x2 and x4; scale must be 2 or 4, got {scale!r}")
    estimator = get_estimator(cfg.estimator)
    estimate = estimator.fn(lr, scale, cfg, callback=callback, **settings_keyword(estimator, cfg.estimator, cfg))
    if not isinstance(estimate, KernelEstimate) or not {2, 4} <= set(estimate.kernels):
        got = (f"kernels for {sorted(estimate.kernels)}" if isinstance(estimate, KernelEstimate)
               else type(estimate).__name__)
        raise EstimatorError(f"kernel estimator {cfg.estimator!r} returned {got}; an estimator returns a "
                             "KernelEstimate with kernels for scales 2 and 4 (zssrgan.kernels.with_x4 derives x4)")
    estimate.estimator = cfg.estimator
    reason = estimator.check(estimate) if estimator.check else None
    estimate.diagnostics["failed"] = float(reason is not None)
    if reason and cfg.strict_estimates:
        raise EstimateFailed(reason, estimate.diagnostics)
    return with_discriminator(estimate, lr, cfg, callback) if discriminator else estimate


def with_discriminator(estimate: KernelEstimate, lr: np.ndarray, cfg: Config,
                       callback: Optional[Callback] = None) -> KernelEstimate:
    """``estimate`` with a discriminator: its own, or KernelGAN's trained against its x2 kernel."""
    if estimate.discriminator is None:
        start, history = time.perf_counter(), History(callback)
        estimate.discriminator = train_discriminator(lr, estimate.kernels[2], cfg, history)
        estimate.history.update(history.as_dict())
        estimate.timings["discriminator"] = time.perf_counter() - start
    return estimate
