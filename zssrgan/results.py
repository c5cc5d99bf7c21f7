"""What the algorithms return: plain NumPy data, so results cross processes and devices freely."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class KernelEstimate:
    """A finished KernelGAN run for one image, reusable by every method that needs it.

    ``kernels`` maps scale (2, 4) to the post-processed, centred kernel for that scale;
    ``raw_kernel`` is G's composed 13x13 kernel before post-processing; the discriminator's
    state (parameters and buffers, as NumPy arrays) lets ZSSRGAN reuse D on any device.
    """

    kernels: dict[int, np.ndarray]
    raw_kernel: np.ndarray
    discriminator_state: dict[str, np.ndarray]
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class MethodResult:
    """One method's output on one image: SR image in [0, 1] (HxWx3 float32), the kernel it used
    for the final scale (estimated or given; None for plain interpolation), the per-step history
    per phase, and seconds per phase (with ``total``)."""

    sr: np.ndarray
    kernel: Optional[np.ndarray]
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    estimate: Optional[KernelEstimate] = None


@dataclass
class Evaluation:
    """One finished job, ready for tracking: what a worker sends back to the driver.

    ``metrics`` uses the names of the MLflow schema (ARCHITECTURE.md); ``sr`` is None for
    KernelGAN estimate jobs, whose ``estimate`` travels on to the methods that reuse it.
    """

    metrics: dict[str, float]
    timings: dict[str, float]
    history: dict[str, list[dict[str, float]]]
    sr: Optional[np.ndarray] = None
    kernel: Optional[np.ndarray] = None
    true_kernel: Optional[np.ndarray] = None
    estimate: Optional[KernelEstimate] = None
    device: str = ""
    host: str = ""
