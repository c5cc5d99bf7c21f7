"""The explicit table of methods compared by the benchmark.

Each method is a plain function ``(lr, scale, cfg, kernels=None, estimate=None, callback=None)
-> MethodResult``: ``lr`` is an HxWx3 float image in [0, 1]; ``kernels`` maps scale to a known
true kernel (``{2: k2}``, ``{2: k2, 4: k4}``); ``estimate`` is a finished KernelGAN estimate to
reuse (methods that need one compute it when none is given). KernelGAN alone is not a method:
the runner computes its estimate as a job of its own (``estimate_kernel``) and hands it on.
"""
from __future__ import annotations

import time
from typing import Callable, Mapping, NamedTuple, Optional

import numpy as np

from .config import Config, ZSSRVariant
from .kernels import analytic_x4_kernel, matlab_bicubic_kernel
from .progress import Callback, History, Timings
from .resize import imresize
from .results import KernelEstimate, MethodResult
from .train.kernelgan import estimate_kernel
from .train.zssr import zssr_super_resolve
from .train.zssrgan import zssrgan_super_resolve

Kernels = Optional[Mapping[int, np.ndarray]]
MethodFn = Callable[..., MethodResult]
SCALES = (2, 4)


class Method(NamedTuple):
    fn: MethodFn
    description: str
    needs_kernel: bool = False  # needs a known true kernel (the oracle)
    uses_estimate: bool = False  # consumes a KernelGAN estimate (shared per image by the runner)


def bicubic(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
            estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """MATLAB-compatible bicubic interpolation: the floor every learned method must beat."""
    start = time.perf_counter()
    sr = np.clip(imresize(lr, scale=scale), 0.0, 1.0).astype(np.float32)
    return MethodResult(sr=sr, kernel=None, timings={"total": time.perf_counter() - start})


def _estimate(lr: np.ndarray, scale: int, cfg: Config, estimate: Optional[KernelEstimate],
              history: History, timings: Timings) -> tuple[KernelEstimate, bool]:
    """The runner's shared estimate, or a fresh one (timed as ``kernelgan``); True when fresh."""
    if estimate is not None:
        return estimate, False
    with timings.phase("kernelgan"):
        return estimate_kernel(lr, scale=scale, cfg=cfg, callback=history), True


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
    """ZSSR with KernelGAN's discriminator in ``mode``; e2e trains its own KernelGAN (always fresh)."""
    timings, history = Timings(), History(callback)
    with timings.phase("total"):
        fresh = mode == "e2e"
        if not fresh:
            estimate, fresh = _estimate(lr, scale, cfg, estimate, history, timings)
        sr, estimate, zssr_timings = zssrgan_super_resolve(lr, scale, cfg, mode, estimate, callback=history)
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
    """KernelGAN's estimate, then the post-KernelGAN ZSSR variant (the KernelGAN paper's pipeline)."""
    return _zssr(lr, scale, cfg, None, cfg.zssr.kernelgan, callback, estimate)


def zssrgan_fixed(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
                  estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """KernelGAN, then ZSSR with KernelGAN's frozen discriminator as an adversarial loss."""
    return _zssrgan("fixed", lr, scale, cfg, estimate, callback)


def zssrgan_serial(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
                   estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """KernelGAN, then ZSSR and KernelGAN's discriminator trained against each other."""
    return _zssrgan("serial", lr, scale, cfg, estimate, callback)


def zssrgan_e2e(lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
                estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """KernelGAN's G, ZSSR and D trained in one loop, one at a time (semi end-to-end), from scratch."""
    return _zssrgan("e2e", lr, scale, cfg, None, callback)


METHODS: dict[str, Method] = {
    "bicubic": Method(bicubic, "bicubic interpolation (MATLAB imresize)"),
    "zssr": Method(zssr, "ZSSR, original configuration, bicubic kernel"),
    "zssr-oracle": Method(zssr_oracle, "ZSSR (post-KernelGAN variant) with the true kernel", needs_kernel=True),
    "kernelgan-zssr": Method(kernelgan_zssr, "KernelGAN estimate, then ZSSR (post-KernelGAN variant)",
                             uses_estimate=True),
    "zssrgan-fixed": Method(zssrgan_fixed, "ZSSR + KernelGAN's frozen discriminator as adversarial loss",
                            uses_estimate=True),
    "zssrgan-serial": Method(zssrgan_serial, "ZSSR + KernelGAN's discriminator, trained on against ZSSR",
                             uses_estimate=True),
    "zssrgan-e2e": Method(zssrgan_e2e, "KernelGAN's G, ZSSR and D trained in one loop (semi end-to-end)"),
}


class MethodError(ValueError):
    """An unknown method, a scale other than 2 or 4, or a missing true kernel."""


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise MethodError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


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
    return method.fn(lr, scale, cfg, kernels=kernels, estimate=estimate, callback=callback)
