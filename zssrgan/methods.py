"""The explicit table of methods compared by the benchmark.

Each method is a plain function ``(lr, scale, cfg, kernels=None, estimate=None, callback=None)
-> MethodResult``: ``lr`` is an HxWx3 float image in [0, 1]; ``kernels`` maps scale to a known
true kernel (``{2: k2}``, ``{2: k2, 4: k4}``); ``estimate`` is a finished kernel estimate to reuse
(methods that need one compute it with ``cfg.estimator`` when none is given). Estimating a kernel
is not a method: the runner computes each estimate as a job of its own
(``zssrgan.estimators.run_estimator``) and hands it on to every method that uses it. Other
packages add methods as plugins (:mod:`zssrgan.plugins`, docs/plugins.md).
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping, NamedTuple, Optional

import numpy as np

from .config import Config, ZSSRVariant, parse_assignment, with_section
from .errors import UserError
from .estimators import ESTIMATORS, EstimatorError, get_estimator, run_estimator, with_discriminator
from .kernels import analytic_x4_kernel, matlab_bicubic_kernel
from .plugins import Kind, resolve, settings_keyword
from .progress import Callback, History, Timings
from .resize import imresize
from .results import KernelEstimate, MethodResult
from .train.zssr import zssr_super_resolve
from .train.zssrgan import zssrgan_super_resolve

Kernels = Optional[Mapping[int, np.ndarray]]
MethodFn = Callable[..., MethodResult]
SCALES = (2, 4)

# What a method takes from the kernel estimator (Method.estimate):
KERNEL = "kernel"  # the estimate's kernels (one estimate job per image, shared)
DISCRIMINATOR = "discriminator"  # its kernels and a trained discriminator (shared too)
GENERATOR = "generator"  # the estimator's trainer, run from scratch inside the method (no shared estimate)


class Method(NamedTuple):
    fn: MethodFn
    description: str
    needs_kernel: bool = False  # needs a known true kernel (the oracle)
    estimate: str = ""  # KERNEL, DISCRIMINATOR, GENERATOR or "" (uses no kernel estimator)
    # config sections (dotted-key prefixes) it reads besides seed, device, real and its estimator's:
    # only these enter its job key, so a grid over another section runs it once
    reads: tuple[str, ...] = ()
    settings: Optional[type] = None  # a plugin's settings dataclass: config keys "<name>.<field>"

    @property
    def shares_estimate(self) -> bool:
        """Whether it uses a finished estimate (the runner's shared one), not the estimator's trainer."""
        return self.estimate in (KERNEL, DISCRIMINATOR)


def bicubic(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
            estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """MATLAB-compatible bicubic interpolation: the floor every learned method must beat."""
    start = time.perf_counter()
    sr = np.clip(imresize(lr, scale=scale), 0.0, 1.0).astype(np.float32)
    return MethodResult(sr=sr, kernel=None, timings={"total": time.perf_counter() - start})


def _estimate(lr: np.ndarray, scale: int, cfg: Config, estimate: Optional[KernelEstimate],
              history: History, timings: Timings, discriminator: bool = False) -> tuple[KernelEstimate, bool]:
    """The runner's shared estimate, or a fresh one of ``cfg.estimator`` (timed as ``estimate``);
    True when fresh. ``discriminator``: the estimate must carry one (see ``run_estimator``)."""
    if estimate is not None:
        return (with_discriminator(estimate, lr, cfg, history) if discriminator else estimate), False
    with timings.phase("estimate"):
        return run_estimator(lr, scale, cfg, callback=history, discriminator=discriminator), True


def _zssr(lr: np.ndarray, scale: int, cfg: Config, kernels: Mapping[int, np.ndarray], variant: ZSSRVariant,
          callback: Optional[Callback], estimate: Optional[KernelEstimate] = None) -> MethodResult:
    """ZSSR with the given kernels (gradually at x4); with an ``estimate`` to reuse or compute when
    ``kernels`` is None (its kernels are used)."""
    timings, history = Timings(), History(callback)
    with timings.phase("total"):
        fresh = False
        if kernels is None:
            estimate, fresh = _estimate(lr, scale, cfg, estimate, history, timings)
            kernels = estimate.kernels
        sr, zssr_timings = zssr_super_resolve(lr, scale, kernels, cfg, variant, callback=history)
    return MethodResult(sr=sr, kernel=np.asarray(kernels[scale]), history=history.as_dict(),
                        timings={**zssr_timings, **timings.as_dict()}, estimate=estimate if fresh else None)


def _zssrgan(mode: str, lr: np.ndarray, scale: int, cfg: Config, estimate: Optional[KernelEstimate],
             callback: Optional[Callback]) -> MethodResult:
    """ZSSR with the estimator's discriminator in ``mode``; e2e trains the estimator's generator
    itself (always fresh) and needs an estimator that has one."""
    trainer = get_estimator(cfg.estimator).trainer
    timings, history = Timings(), History(callback)
    with timings.phase("total"):
        fresh = mode == "e2e"
        if not fresh:
            estimate, fresh = _estimate(lr, scale, cfg, estimate, history, timings, discriminator=True)
        sr, estimate, zssr_timings = zssrgan_super_resolve(lr, scale, cfg, mode, estimate, trainer=trainer,
                                                           callback=history)
    return MethodResult(sr=sr, kernel=estimate.kernels[scale], history=history.as_dict(),
                        timings={**zssr_timings, **timings.as_dict()}, estimate=estimate if fresh else None)


def zssr(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
         estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """ZSSR in its original configuration with MATLAB's bicubic kernel: the KernelGAN paper's baseline."""
    bicubic_kernels = {s: matlab_bicubic_kernel(s) for s in SCALES if s <= scale}
    return _zssr(lr, scale, cfg, bicubic_kernels, cfg.zssr.original, callback)


def zssr_oracle(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
                estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """The post-KernelGAN ZSSR variant with the true kernel: the ceiling of any kernel estimate.
    x4 runs gradually: x2 with the true x2 kernel, then x4 with the true x4 kernel or, when only
    the x2 one is known, its analytic x4 kernel."""
    kernels = dict(kernels)
    if scale == 4 and 4 not in kernels:
        kernels[4] = analytic_x4_kernel(kernels[2])
    return _zssr(lr, scale, cfg, kernels, cfg.zssr.kernelgan, callback)


def kernelgan_zssr(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
                   estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """The estimated kernel (KernelGAN's by default), then the post-KernelGAN ZSSR variant (the
    KernelGAN paper's pipeline)."""
    return _zssr(lr, scale, cfg, None, cfg.zssr.kernelgan, callback, estimate)


def zssrgan_fixed(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
                  estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """A kernel estimate, then ZSSR with the estimator's frozen discriminator as an adversarial loss."""
    return _zssrgan("fixed", lr, scale, cfg, estimate, callback)


def zssrgan_serial(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
                   estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """A kernel estimate, then ZSSR and the estimator's discriminator trained against each other."""
    return _zssrgan("serial", lr, scale, cfg, estimate, callback)


def zssrgan_e2e(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
                estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """The estimator's G (KernelGAN's by default), ZSSR and D trained in one loop, one at a time (semi
    end-to-end), from scratch."""
    return _zssrgan("e2e", lr, scale, cfg, None, callback)


# The ZSSRGAN modes fall back to KernelGAN's discriminator or trainer where the estimator has none,
# so they read "kernelgan." too.
METHODS: dict[str, Method] = {
    "bicubic": Method(bicubic, "bicubic interpolation (MATLAB imresize)"),
    "zssr": Method(zssr, "ZSSR, original configuration, bicubic kernel", reads=("zssr.",)),
    "zssr-oracle": Method(zssr_oracle, "ZSSR (post-KernelGAN variant) with the true kernel", needs_kernel=True,
                          reads=("zssr.",)),
    "kernelgan-zssr": Method(kernelgan_zssr, "estimated kernel, then ZSSR (post-KernelGAN variant)",
                             estimate=KERNEL, reads=("zssr.",)),
    "zssrgan-fixed": Method(zssrgan_fixed, "ZSSR + the estimator's frozen discriminator as adversarial loss",
                            estimate=DISCRIMINATOR, reads=("zssr.", "zssrgan.", "kernelgan.")),
    "zssrgan-serial": Method(zssrgan_serial, "ZSSR + the estimator's discriminator, trained on against ZSSR",
                             estimate=DISCRIMINATOR, reads=("zssr.", "zssrgan.", "kernelgan.")),
    "zssrgan-e2e": Method(zssrgan_e2e, "the estimator's G, ZSSR and D trained in one loop (semi end-to-end)",
                          estimate=GENERATOR, reads=("zssr.", "zssrgan.")),
}


def generator_estimators() -> list[str]:
    """The estimators ``zssrgan-e2e`` can run with (those with a trainer)."""
    return [name for name, estimator in ESTIMATORS.items() if estimator.trainer is not None]


def applicable(method: str, estimator: str) -> Optional[str]:
    """Why ``method`` cannot run with ``estimator`` (None when it can)."""
    if get_method(method).estimate == GENERATOR and get_estimator(estimator).trainer is None:
        return f"{method} trains the estimator's generator and {estimator!r} has none"
    return None


class MethodError(UserError, ValueError):
    """An unknown method, a scale other than 2 or 4, a missing true kernel, or a result that breaks
    the contract."""


PLUGINS = Kind("method", "zssrgan.methods", METHODS, Method, ("lr", "scale", "cfg"),
               ("kernels", "estimate", "callback"), MethodResult, MethodError)


def get_method(name: str) -> Method:
    """The built-in method ``name``, else the plugin of that name (:mod:`zssrgan.plugins`)."""
    return resolve(PLUGINS, name)


def with_plugin_settings(cfg: Config, methods: Iterable[str] = (), estimators: Iterable[str] = (),
                         overrides: Iterable[str] = ()) -> Config:
    """``cfg`` with the settings section (defaults) of each of these methods and estimators (and of
    the estimators that ``estimator=NAME`` overrides name) that declares one, so that ``--set`` and
    ``--grid`` reach its keys and every run logs them."""
    estimators = [*estimators, *(value for key, value in map(parse_assignment, overrides) if key == "estimator")]
    rows = [*((name, get_estimator(name)) for name in estimators), *((name, get_method(name)) for name in methods)]
    for name, row in rows:
        if row.settings is not None:
            cfg = with_section(cfg, name, row.settings())
    return cfg


def run_method(name: str, lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
               estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """Validate the request, then run the method."""
    method = get_method(name)
    if scale not in SCALES:
        raise MethodError(f"scale must be one of {', '.join(map(str, SCALES))}, got {scale!r}")
    if method.needs_kernel and not (kernels and 2 in kernels):
        given = ", ".join(f"x{s}" for s in kernels) if kernels else "none"
        gradual = " (x4 runs gradually: x2 first)" if scale == 4 else ""
        raise MethodError(f"method {name!r} needs the true x2 kernel{gradual}; kernels given: {given}; "
                          "methods that do not: " + ", ".join(n for n, m in METHODS.items() if not m.needs_kernel))
    reason = applicable(name, cfg.estimator) if method.estimate else None
    if reason:
        raise EstimatorError(f"{reason}; estimators it runs with: {', '.join(generator_estimators())}")
    result = method.fn(lr, scale, cfg, kernels=kernels, estimate=estimate, callback=callback,
                       **settings_keyword(method, name, cfg))
    expected = (lr.shape[0] * scale, lr.shape[1] * scale, 3)
    if not isinstance(result, MethodResult) or np.shape(result.sr) != expected:
        got = (f"an SR image of shape {np.shape(result.sr)}" if isinstance(result, MethodResult)
               else type(result).__name__)
        raise MethodError(f"method {name!r} returned {got}; a method returns a MethodResult whose sr is the "
                          f"{expected[0]}x{expected[1]}x3 image")
    return result
