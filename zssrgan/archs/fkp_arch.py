"""KernelGAN-FKP's networks (Liang et al., CVPR 2021): the generator is a frozen kernel prior and a
latent vector; the discriminator is a small WGAN-GP critic.

The generator's only trainable parameter is the latent: the flow's inverse turns it into a kernel,
so every kernel the GAN can reach is one the prior finds plausible.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .flow_arch import KernelPrior


class FlowGenerator(nn.Module):
    """G(x) = x correlated with the prior's kernel for ``latent``, every 2nd row and column kept.

    Works on single-channel images (colour channels as a batch), like KernelGAN's G; the prior is
    frozen (eval mode, no gradients): only the latent trains. The kernel is used as the flow gives
    it, not clipped nor normalised, as published.
    """

    def __init__(self, prior: KernelPrior, latent: torch.Tensor, stride: int = 2) -> None:
        super().__init__()
        self.prior = prior.eval().requires_grad_(False)
        self.latent = nn.Parameter(latent.reshape(1, -1).clone())
        self.stride = stride
        self.kernel_size = prior.kernel_size

    def train(self, mode: bool = True) -> "FlowGenerator":
        super().train(mode)
        self.prior.eval()  # its batch-norm layers always use the statistics they were trained with
        return self

    def kernel(self) -> torch.Tensor:
        """The (n, n) kernel of the current latent, differentiable w.r.t. the latent."""
        return self.prior.to_kernel(self.prior.inverse(self.latent)[0])[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(kernel, G(x)) for (B, 1, H, W) images: ((H - n) // 2 + 1)-sided outputs."""
        kernel = self.kernel()
        return kernel, F.conv2d(x, kernel[None, None], stride=self.stride)

    @torch.no_grad()
    def project(self, radius: float) -> None:
        """Put the latent back on the sphere of ``radius`` (after each optimiser step)."""
        self.latent.div_(self.latent.square().sum().add(1e-9).sqrt()).mul_(radius)


class Critic(nn.Module):
    """The WGAN-GP critic: ``layers`` 3x3 convolutions without padding, all but the last followed by
    BatchNorm and LeakyReLU(0.2); a linear map of scores (a 27x27 crop -> 17x17 with 5 layers).

    Takes images in [-1, 1] (the published one takes [0, 1] and maps them there itself). Weights as
    published: convolutions ~ N(0, 0.02) (biases keep PyTorch's default), BatchNorm weights
    ~ N(1, 0.02) and biases 0.
    """

    def __init__(self, channels: int = 32, layers: int = 5, kernel_size: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for n in range(layers - 1):
            conv = nn.Conv2d(in_channels if n == 0 else channels, channels, kernel_size)
            norm = nn.BatchNorm2d(channels)
            nn.init.normal_(conv.weight, 0.0, 0.02)
            nn.init.normal_(norm.weight, 1.0, 0.02)
            nn.init.zeros_(norm.bias)
            body += [conv, norm, nn.LeakyReLU(0.2, inplace=True)]
        tail = nn.Conv2d(channels, 1, kernel_size)
        nn.init.normal_(tail.weight, 0.0, 0.02)
        self.body = nn.Sequential(*body, tail)
        self.shave = layers * (kernel_size - 1)  # input side - output side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's penalty, as published: one interpolation weight for the whole batch, the gradient's
    norm over the colour channels at each pixel, mean of (norm - 1)^2 (differentiable, for the critic)."""
    alpha = torch.rand((), generator=generator, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    gradients, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (gradients.norm(2, dim=1) - 1).square().mean()
