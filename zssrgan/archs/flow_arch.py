"""FKP's kernel prior (Liang et al., CVPR 2021): a normalizing flow over flattened blur kernels.

RealNVP-style affine coupling blocks, each followed by a flow batch-norm, map a kernel (in the
logit space of :meth:`KernelPrior.to_logit`) to a standard normal latent of the same size, with
the log-determinant of the Jacobian; the inverse maps any latent back to a kernel. Trained by
maximum likelihood on plausible kernels (``zssrgan.train.prior``), the inverse only produces
kernels like them, which is what KernelGAN-FKP searches over instead of a free-form generator.
"""
from __future__ import annotations

import math

import torch
from torch import nn

ALPHA = 1e-6  # the logit transform squeezes [0, 1] into [ALPHA, 1 - ALPHA]


def prior_shape(scale: int) -> dict[str, int]:
    """The published sizes for a scale factor: kernels of min(4s + 3, 21) taps a side (11 at x2,
    19 at x4), hidden layers min(5s + 5, 25) wide, 5 blocks of one hidden layer each."""
    return {"kernel_size": min(4 * scale + 3, 21), "hidden": min(5 * scale + 5, 25), "blocks": 5, "n_hidden": 1}


def _mlp(size: int, hidden: int, n_hidden: int, activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(size, hidden)]
    for _ in range(n_hidden):
        layers += [activation(), nn.Linear(hidden, hidden)]
    return nn.Sequential(*layers, activation(), nn.Linear(hidden, size))


class Coupling(nn.Module):
    """Affine coupling: the taps where ``mask`` is 1 pass unchanged and set a scale and a shift for
    the others (scale net with Tanh, shift net with ReLU, as published)."""

    def __init__(self, size: int, hidden: int, n_hidden: int, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.s_net = _mlp(size, hidden, n_hidden, nn.Tanh)
        self.t_net = _mlp(size, hidden, n_hidden, nn.ReLU)
        self.t_net.load_state_dict(self.s_net.state_dict())  # as published: t starts as a copy of s

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = x * self.mask
        log_s, t = self.s_net(kept), self.t_net(kept)
        free = 1 - self.mask
        return kept + free * (x - t) * torch.exp(-log_s), -(free * log_s).sum(-1)

    def inverse(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = u * self.mask
        log_s, t = self.s_net(kept), self.t_net(kept)
        free = 1 - self.mask
        return kept + free * (u * torch.exp(log_s) + t), (free * log_s).sum(-1)


class FlowBatchNorm(nn.Module):
    """Batch normalisation as an invertible layer (RealNVP): batch statistics in training (unbiased
    variance, as published), running ones (momentum 0.9 on the old value) otherwise."""

    def __init__(self, size: int, momentum: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(size))
        self.beta = nn.Parameter(torch.zeros(size))
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("running_var", torch.ones(size))
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The statistics of the last forward pass in training (what its inverse must undo), else the running ones."""
        if self.training and self._batch is not None:
            return self._batch
        return self.running_mean, self.running_var

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            flat = x.reshape(-1, x.shape[-1])
            self._batch = mean, var = flat.mean(0), flat.var(0)
            with torch.no_grad():
                self.running_mean.mul_(self.momentum).add_(mean.detach() * (1 - self.momentum))
                self.running_var.mul_(self.momentum).add_(var.detach() * (1 - self.momentum))
        else:
            mean, var = self._stats()
        y = self.log_gamma.exp() * (x - mean) / torch.sqrt(var + self.eps) + self.beta
        log_det = (self.log_gamma - 0.5 * torch.log(var + self.eps)).sum()
        return y, log_det.expand(x.shape[:-1])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._stats()
        x = (y - self.beta) * torch.exp(-self.log_gamma) * torch.sqrt(var + self.eps) + mean
        log_det = (0.5 * torch.log(var + self.eps) - self.log_gamma).sum()
        return x, log_det.expand(y.shape[:-1])


class KernelPrior(nn.Module):
    """The flow with its kernel preprocessing: ``forward`` maps logit-space kernels (..., n*n) to
    latents and log|det dz/dx|, ``inverse`` latents back, ``to_logit`` / ``to_kernel`` convert
    between kernels (..., n, n) and the flow's space.

    ``normalization`` is slightly more than the peak of the narrowest training kernel, so every
    tap divided by it lies in [0, 1) before the logit transform.
    """

    def __init__(self, kernel_size: int, hidden: int, blocks: int = 5, n_hidden: int = 1,
                 normalization: float = 1.0) -> None:
        super().__init__()
        self.kernel_size, self.hidden, self.blocks, self.n_hidden = kernel_size, hidden, blocks, n_hidden
        size = kernel_size ** 2
        self.register_buffer("normalization", torch.tensor(float(normalization)))
        mask = (torch.arange(size) % 2).float()
        layers: list[nn.Module] = []
        for _ in range(blocks):
            layers += [Coupling(size, hidden, n_hidden, mask), FlowBatchNorm(size)]
            mask = 1 - mask  # the other half of the taps changes in the next block
        self.layers = nn.ModuleList(layers)

    @property
    def settings(self) -> dict[str, int]:
        """The constructor's arguments but ``normalization`` (a buffer, saved with the weights)."""
        return {"kernel_size": self.kernel_size, "hidden": self.hidden, "blocks": self.blocks,
                "n_hidden": self.n_hidden}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = x.new_zeros(x.shape[:-1])
        for layer in self.layers:
            x, step = layer(x)
            log_det = log_det + step
        return x, log_det

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = z.new_zeros(z.shape[:-1])
        for layer in reversed(self.layers):
            z, step = layer.inverse(z)
            log_det = log_det + step
        return z, log_det

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) of logit-space kernels under the flow (standard normal latent)."""
        z, log_det = self(x)
        return -0.5 * (z.square() + math.log(2 * math.pi)).sum(-1) + log_det

    def to_logit(self, kernels: torch.Tensor, noise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """(..., n, n) kernels -> (..., n*n) flow inputs: clip at 0, divide by ``normalization``,
        add ``noise`` (the dequantisation noise of training), logit of [ALPHA, 1 - ALPHA]."""
        x = kernels.clamp_min(0).flatten(-2) / self.normalization + noise
        x = ALPHA + (1 - 2 * ALPHA) * x
        return torch.log(x / (1 - x))

    def to_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_logit` without the noise: (..., n*n) -> (..., n, n). As
        published, not clipped nor normalised (taps may dip to -ALPHA x normalization; the sum is
        near 1 plus the mean dequantisation noise)."""
        x = (torch.sigmoid(x) - ALPHA) / (1 - 2 * ALPHA) * self.normalization
        return x.unflatten(-1, (self.kernel_size, self.kernel_size))
