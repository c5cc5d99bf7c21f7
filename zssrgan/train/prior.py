"""FKP's kernel prior: maximum-likelihood training on synthetic Gaussian kernels, saving, loading.

As published (Liang et al., CVPR 2021): anisotropic Gaussians with eigen-variances uniform in
[0.175 s, min(2.5 s, 10)] and angles uniform in [0, pi) are drawn afresh every epoch, divided by
slightly more than the narrowest one's peak, given uniform dequantisation noise (so the zero-ish
taps have a density) and taken to logit space; Adam minimises their negative log-likelihood under
the flow. The held-out set is the published grid of variances (steps of 0.3) and angles (steps of
0.2) with fixed noise, so every epoch is measured on the same numbers.

Kernels follow the project's convention: correlation kernels centred for the scale
(``kernels.centred_position``, 5.5 for 11 taps at x2). The published generator centres them at
(n - s) / 2 (4.5) for its own convolution convention; a centred Gaussian turned by 180 degrees is
the same Gaussian centred at n - 1 - 4.5 = 5.5, so this is the published distribution, in our
convention.

Weights travel as ``.npz`` (no pickle): the state dict's arrays plus ``meta.*`` entries (sizes,
scale, how it was trained). ``zssrgan/data/priors/fkp_x2.npz`` is the prior the package ships.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..archs.flow_arch import KernelPrior, prior_shape
from ..config import require_at_least
from ..device import cpu_model
from ..errors import InputError
from ..io import read_npz, write_npz
from ..kernels import centred_gaussians, gaussian_prior_kernels
from ..progress import Callback, Timings

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "priors"
SCALES = (2, 4)
_META_INTS = ("scale", "kernel_size", "hidden", "blocks", "n_hidden")


class PriorError(InputError):
    """A prior file that cannot be used: unreadable, or not the flow this code builds for its scale."""


@dataclass
class PriorTrainingConfig:
    """The published training budget and settings (FKP's ``FKP/main.py``)."""

    scale: int = 2
    epochs: int = 100
    kernels_per_epoch: int = 50_000
    batch_size: int = 100
    lr: float = 1e-4
    weight_decay: float = 1e-6
    lr_milestones: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # epochs 40, 50, ..., 90 of 100
    lr_gamma: float = 0.5
    noise: float = 1.0 / 720.0  # dequantisation noise ~ U(0, noise), after dividing by the normalisation
    seed: int = 0

    def __post_init__(self) -> None:
        require_at_least("kernel prior training: ", self, epochs=1, kernels_per_epoch=1, batch_size=1)
        if self.scale not in SCALES:
            raise InputError(f"a kernel prior is trained for x2 or x4, got scale {self.scale!r}")


def variance_range(scale: int) -> tuple[float, float]:
    """The published eigen-variance range of the training kernels: [0.175 s, min(2.5 s, 10)]."""
    return 0.175 * scale, min(2.5 * scale, 10.0)


def normalization(scale: int) -> float:
    """Slightly more than the peak of the narrowest training kernel (rounded to 5 decimals, + 0.01,
    as published), so that every tap divided by it stays below 1 with its noise."""
    low = variance_range(scale)[0]
    peak = centred_gaussians(prior_shape(scale)["kernel_size"], scale, low, low, 0.0).max()
    return round(float(peak), 5) + 0.01


def held_out_kernels(scale: int) -> np.ndarray:
    """The published validation grid: variances from 0.175 s in steps of 0.3 up to the top of the
    range (+0.3), angles 0, 0.2, ..., 3.0 (4624 kernels at x2)."""
    low, high = variance_range(scale)
    variances, thetas = np.arange(low, high + 0.3, 0.3), np.arange(0.0, np.pi, 0.2)
    l1, l2, theta = (a.ravel() for a in np.meshgrid(variances, variances, thetas, indexing="ij"))
    return centred_gaussians(prior_shape(scale)["kernel_size"], scale, l1, l2, theta)


def build_prior(scale: int) -> KernelPrior:
    """An untrained prior of the published shape for ``scale``."""
    return KernelPrior(**prior_shape(scale), normalization=normalization(scale))


@torch.no_grad()
def mean_log_likelihood(prior: KernelPrior, kernels: np.ndarray, noise: np.ndarray) -> float:
    """Mean log-likelihood (nats, logit space, as published) of ``kernels`` with their ``noise``
    under the prior in eval mode (running batch-norm statistics)."""
    training = prior.training
    prior.eval()
    x = prior.to_logit(torch.as_tensor(kernels, dtype=torch.float64), torch.as_tensor(noise)).float()
    value = float(prior.log_prob(x).mean())
    prior.train(training)
    return value


def train_prior(cfg: PriorTrainingConfig, callback: Optional[Callback] = None
                ) -> tuple[KernelPrior, dict[str, float]]:
    """Train a prior by maximum likelihood; returns it (eval mode) and a report: held-out
    log-likelihood before and after, seconds. ``callback("prior", epoch, values)`` after each epoch
    (mean training loss, held-out log-likelihood, learning rate). Deterministic for a seed on one
    machine (torch is seeded in a forked RNG state)."""
    rng = np.random.default_rng(cfg.seed)
    timings = Timings()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        prior = build_prior(cfg.scale)
    held_out = held_out_kernels(cfg.scale)
    held_out_noise = rng.uniform(0.0, cfg.noise, size=(len(held_out), held_out[0].size))
    report = {"held_out_log_likelihood_init": mean_log_likelihood(prior, held_out, held_out_noise)}
    optimizer = torch.optim.Adam(prior.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    milestones = sorted({round(f * cfg.epochs) for f in cfg.lr_milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=cfg.lr_gamma)
    low, high = variance_range(cfg.scale)
    size = prior.kernel_size
    prior.train()
    with timings.phase("train"):
        for epoch in range(cfg.epochs):
            kernels = gaussian_prior_kernels(rng, cfg.kernels_per_epoch, size, cfg.scale, low, high)
            x = prior.to_logit(torch.from_numpy(kernels), torch.from_numpy(rng.uniform(0.0, cfg.noise, (len(kernels), size * size)))).float()
            lr = optimizer.param_groups[0]["lr"]
            losses = []
            for batch in x.split(cfg.batch_size):
                loss = -prior.log_prob(batch).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
            scheduler.step()
            values = {"loss": float(torch.stack(losses).mean()), "lr": lr,
                      "held_out_log_likelihood": mean_log_likelihood(prior, held_out, held_out_noise)}
            if callback is not None:
                callback("prior", epoch, values)
    prior.eval()
    report.update(held_out_log_likelihood=values["held_out_log_likelihood"], seconds=timings.as_dict()["train"])
    return prior, report


@torch.no_grad()
def sample_kernels(prior: KernelPrior, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` kernels drawn from the prior (standard normal latents through the inverse), clipped at
    0 and normalised to sum 1: (n, size, size) float64."""
    z = torch.from_numpy(rng.standard_normal((n, prior.kernel_size ** 2))).float()
    kernels = prior.to_kernel(prior.inverse(z)[0]).double().clamp_min(0).numpy()
    return kernels / kernels.sum(axis=(1, 2), keepdims=True)


def save_prior(path: Union[str, Path], prior: KernelPrior, scale: int, info: Optional[dict] = None) -> None:
    """Write the prior's weights and sizes (and ``info``: floats, ints or strings, how it was made)
    as an ``.npz`` that loads without pickle."""
    arrays = {name: value.detach().cpu().numpy() for name, value in prior.state_dict().items()}
    meta = {"scale": scale, **prior.settings, **(info or {})}
    arrays.update({f"meta.{key}": np.asarray(value) for key, value in meta.items()})
    write_npz(path, arrays, "prior")


def shipped_prior_path(scale: int) -> Path:
    return SHIPPED / f"fkp_x{scale}.npz"


def load_prior(path: Union[str, Path, None] = None, scale: int = 2) -> KernelPrior:
    """The prior in ``path`` (default: the shipped one for ``scale``), in eval mode, on the CPU.

    Refuses, with :class:`PriorError`, a file that is not an npz of plain arrays, one made for
    another scale or kernel size, and one whose arrays are missing or shaped differently from the
    flow this code builds (e.g. saved by another version).
    """
    path = Path(path) if path else shipped_prior_path(scale)
    if not path.is_file():
        known = ", ".join(str(s) for s in SCALES if shipped_prior_path(s).is_file())
        hint = f" (the package ships priors for x{known}; train one with `zssrgan prior train`)" if known else ""
        raise PriorError(f"no kernel prior at {path}{hint}")
    arrays = read_npz(path, PriorError, "kernel prior")
    missing_meta = [key for key in _META_INTS if f"meta.{key}" not in arrays]
    if missing_meta:
        raise PriorError(f"{path}: not a kernel prior file: no {', '.join('meta.' + k for k in missing_meta)}")
    meta = {key: int(arrays[f"meta.{key}"]) for key in _META_INTS}
    expected = prior_shape(scale)
    if meta["scale"] != scale or meta["kernel_size"] != expected["kernel_size"]:
        raise PriorError(f"{path}: a prior for x{meta['scale']} ({meta['kernel_size']}x{meta['kernel_size']} "
                         f"kernels); x{scale} needs {expected['kernel_size']}x{expected['kernel_size']} kernels")
    prior = KernelPrior(**{key: meta[key] for key in ("kernel_size", "hidden", "blocks", "n_hidden")})
    state = prior.state_dict()
    weights = {name: value for name, value in arrays.items() if not name.startswith("meta.")}
    problems = [f"{name} missing" for name in state if name not in weights]
    problems += [f"{name} is not part of the flow" for name in weights if name not in state]
    problems += [f"{name} has shape {tuple(weights[name].shape)}, the flow needs {tuple(value.shape)}"
                 for name, value in state.items() if name in weights and tuple(weights[name].shape) != tuple(value.shape)]
    if problems:
        raise PriorError(f"{path}: does not fit the x{scale} kernel prior: " + "; ".join(problems[:5])
                         + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    prior.load_state_dict({name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in weights.items()})
    return prior.eval()


def training_info(cfg: PriorTrainingConfig, report: dict[str, float], threads: int) -> dict:
    """What to save beside the weights: the training settings, its result and the machine."""
    return {**{f"train_{key}": value for key, value in asdict(cfg).items()}, **report,
            "hardware": f"{cpu_model()}, {threads} torch thread(s)"}
