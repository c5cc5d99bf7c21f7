"""The explicit table of methods compared by the benchmark.

Each method is a plain function ``(lr, scale, cfg, kernels=None, estimate=None, callback=None)
-> MethodResult``: ``lr`` is an HxWx3 float image in [0, 1]; ``kernels`` maps scale to a known
true kernel (``{2: k2}``, ``{2: k2, 4: k4}``); ``estimate`` is a finished KernelGAN estimate to
reuse (methods that need one compute it when none is given).
"""
from __future__ import annotations

import time
from typing import Callable, Mapping, NamedTuple, Optional

import numpy as np

from .config import Config
from .progress import Callback
from .resize import imresize
from .results import KernelEstimate, MethodResult

Kernels = Optional[Mapping[int, np.ndarray]]
MethodFn = Callable[..., MethodResult]


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


METHODS: dict[str, Method] = {
    "bicubic": Method(bicubic, "bicubic interpolation (MATLAB imresize)"),
}


class MethodError(ValueError):
    """An unknown method, or one that needs a kernel it was not given."""


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise MethodError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def run_method(name: str, lr: np.ndarray, scale: int, cfg: Config, kernels: Kernels = None,
               estimate: Optional[KernelEstimate] = None, callback: Optional[Callback] = None) -> MethodResult:
    """Validate the request, then run the method."""
    method = get_method(name)
    if scale not in (2, 4):
        raise MethodError(f"scale must be 2 or 4, got {scale!r}")
    if method.needs_kernel and not kernels:
        raise MethodError(f"method {name!r} needs the true kernel (--kernel); methods that do not: "
                          + ", ".join(n for n, m in METHODS.items() if not m.needs_kernel))
    return method.fn(lr, scale, cfg, kernels=kernels, estimate=estimate, callback=callback)
