"""What the algorithms return: plain NumPy data, so results cross processes and devices freely."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:  # results stay importable without torch
    import torch


@dataclass
class DiscriminatorState:
    """A trained discriminator as plain data: ``arch`` names its row in
    ``zssrgan.train.zssrgan.DISCRIMINATORS`` (how to build it and its adversarial loss),
    ``settings`` its constructor arguments, ``state`` its parameters and buffers."""

    arch: str
    settings: dict[str, int]
    state: dict[str, np.ndarray]

    @classmethod
    def of(cls, arch: str, settings: dict[str, int], module: torch.nn.Module) -> DiscriminatorState:
        """``module``'s parameters and buffers copied to NumPy (for reuse on any device)."""
        return cls(arch, settings, {name: value.detach().cpu().numpy().copy()
                                    for name, value in module.state_dict().items()})


@dataclass
class KernelEstimate:
    """A finished kernel estimate for one image, reusable by every method that needs it.

    ``kernels`` maps scale (2, 4) to the post-processed, centred kernel for that scale;
    ``estimator`` is the name of the estimator that produced it (a built-in one or a plugin);
    ``raw_kernel`` is the estimator's kernel before post-processing (G's composed 13x13 kernel for
    KernelGAN; None when there is none); ``discriminator`` lets the ZSSRGAN modes reuse a trained
    discriminator on any device (None for estimators that train none); ``diagnostics`` are the
    floats that tell a sound estimate from a failed one (logged as ``estimate_<name>`` metrics).
    """

    kernels: dict[int, np.ndarray]
    estimator: str = "kernelgan"
    raw_kernel: Optional[np.ndarray] = None
    discriminator: Optional[DiscriminatorState] = None
    diagnostics: dict[str, float] = field(default_factory=dict)
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
