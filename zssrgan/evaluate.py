"""One benchmark job as a plain function: load, run, score. What a sweep worker calls, minus Ray.

Inputs are paths (an :class:`~zssrgan.datasets.ImageItem`), so a job travels cheaply and each
worker reads its own image; the result is an :class:`~zssrgan.results.Evaluation` ready for
tracking.
"""
from __future__ import annotations

import socket
import time
from typing import Optional

import numpy as np

from . import metrics
from .config import Config
from .datasets import ImageItem
from .device import device_name, resolve_device
from .estimators import run_estimator
from .io import load_image
from .kernels import matlab_bicubic_kernel
from .methods import get_method, run_method
from .progress import History, Timings
from .results import Evaluation, KernelEstimate


def iterations_per_second(history: dict[str, list[dict[str, float]]], seconds: float) -> Optional[float]:
    """Training iterations (last step + 1 of every phase) per second; None without training."""
    iterations = sum(rows[-1]["step"] + 1 for rows in history.values() if rows)
    return iterations / seconds if iterations and seconds > 0 else None


def diagnostic_metrics(diagnostics: dict[str, float]) -> dict[str, float]:
    """An estimate's diagnostics under their metric names (``estimate_<name>``)."""
    return {f"estimate_{name}": float(value) for name, value in diagnostics.items()}


def _finish(evaluation: Evaluation, cfg: Config) -> Evaluation:
    its = iterations_per_second(evaluation.history, evaluation.timings.get("total", 0.0))
    if its is not None:
        evaluation.metrics["its_per_sec"] = its
    evaluation.device = device_name(resolve_device(cfg.device))
    evaluation.host = socket.gethostname()
    return evaluation


def _true_kernels(item: ImageItem, method_needs_kernel: bool, scale: int
                  ) -> tuple[Optional[dict[int, np.ndarray]], Optional[np.ndarray]]:
    """(kernels the method is given, true kernel to score against).

    On a bicubic-protocol item (ground truth, no kernel files) the degradation is MATLAB's bicubic
    downscaling, so a method that needs the true kernel gets its kernel equivalent; no kernel error
    is scored, since no kernel was measured.
    """
    kernels = item.load_kernels()
    if kernels:
        return kernels, kernels.get(scale)
    if method_needs_kernel and item.gt_path is not None:
        return {s: matlab_bicubic_kernel(s) for s in sorted({2, scale})}, None
    return None, None


def evaluate_method(item: ImageItem, method: str, scale: int, cfg: Config,
                    estimate: Optional[KernelEstimate] = None) -> Evaluation:
    """Run ``method`` on ``item``'s LR image (reusing ``estimate`` when given) and score it."""
    timings = Timings()
    with timings.phase("load"):
        lr = load_image(item.lr_path)
        gt = load_image(item.gt_path) if item.gt_path is not None else None
        kernels, true_kernel = _true_kernels(item, get_method(method).needs_kernel, scale)
    history = History()
    result = run_method(method, lr, scale, cfg, kernels=kernels, estimate=estimate, callback=history)
    with timings.phase("metrics"):
        scores = metrics.evaluate(result.sr, lr, scale, gt=gt, kernel_used=result.kernel, true_kernel=true_kernel)
    if result.estimate is not None:
        scores.update(diagnostic_metrics(result.estimate.diagnostics))
    evaluation = Evaluation(metrics=scores, timings={**result.timings, **timings.as_dict()},
                            history=result.history or history.as_dict(), sr=result.sr,
                            kernel=result.kernel, true_kernel=true_kernel)
    return _finish(evaluation, cfg)


def evaluate_estimate(item: ImageItem, scale: int, cfg: Config, discriminator: bool = False) -> Evaluation:
    """Estimate ``item``'s kernel with ``cfg.estimator`` (with a discriminator when the methods that
    reuse it need one); score it when the true kernel is known. A failed estimate raises
    :class:`~zssrgan.estimators.EstimateFailed`, whose diagnostics the runner records."""
    timings = Timings()
    with timings.phase("load"):
        lr = load_image(item.lr_path)
        true_kernel = (item.load_kernels() or {}).get(scale)
    start = time.perf_counter()
    estimate = run_estimator(lr, scale, cfg, discriminator=discriminator)  # records its own history
    total = time.perf_counter() - start
    kernel = estimate.kernels[scale]
    scores = diagnostic_metrics(estimate.diagnostics)
    if true_kernel is not None:
        scores.update(kernel_error=metrics.kernel_error(kernel, true_kernel),
                      kernel_psnr=metrics.kernel_psnr(kernel, true_kernel))
    evaluation = Evaluation(metrics=scores, timings={"total": total, **estimate.timings, **timings.as_dict()},
                            history=estimate.history, kernel=kernel, true_kernel=true_kernel, estimate=estimate)
    return _finish(evaluation, cfg)
