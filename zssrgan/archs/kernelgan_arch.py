"""KernelGAN's networks (docs/algorithms.md, KernelGAN): the deep linear generator and the patch discriminator.

G is linear, so G(x) equals one strided correlation of x with G's composed 13x13 kernel. Training
through that kernel (:func:`generate`) gives the same outputs and the same gradients for every
layer's weights as the layer-by-layer forward (:meth:`Generator.forward`), at a fraction of the cost.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

G_KERNEL_SIZES = (7, 5, 3, 1, 1, 1)
D_RECEPTIVE_FIELD = 7


class Generator(nn.Module):
    """6 bias-free convolutions (7, 5, 3, 1, 1, 1), no activations, stride 2 on the last.

    Works on single-channel images: colour channels travel as a batch of 3 so one kernel serves all.
    """

    def __init__(self, channels: int = 64, kernel_sizes: tuple[int, ...] = G_KERNEL_SIZES, stride: int = 2) -> None:
        super().__init__()
        widths = [1] + [channels] * (len(kernel_sizes) - 1) + [1]
        self.layers = nn.ModuleList(
            nn.Conv2d(widths[n], widths[n + 1], size, stride=stride if n == len(kernel_sizes) - 1 else 1, bias=False)
            for n, size in enumerate(kernel_sizes)
        )
        self.stride = stride
        self.kernel_size = sum(kernel_sizes) - len(kernel_sizes) + 1  # 13
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight, gain=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The literal layer-by-layer forward: (B, 1, H, W) -> (B, 1, (H - 12 + 1) // 2, ...)."""
        for layer in self.layers:
            x = layer(x)
        return x


def _compose(first: torch.Tensor, then: torch.Tensor) -> torch.Tensor:
    """Weights of the single correlation equal to correlating with ``first`` (..., m, i, a, a) and
    then with ``then`` (..., o, m, b, b): K[o, i, p] = sum over m and a + b = p of then[o, m, b]
    first[m, i, a] (leading dimensions: independent stacks of weights).

    One matmul gives every product of a tap of ``then`` with ``first``; ``fold`` adds each at its
    offset. Far cheaper on a CPU than a convolution with these odd shapes, in both directions.
    1x1 after 1x1 is a plain matrix product.
    """
    lead, (outs, mids, size) = then.shape[:-4], then.shape[-4:-1]
    ins, first_size = first.shape[-3], first.shape[-1]
    if size == first_size == 1:
        return (then.flatten(-3) @ first.flatten(-3))[..., None, None]
    products = then.movedim(-3, -1).reshape(*lead, outs * size * size, mids) @ first.reshape(*lead, mids, -1)
    blocks = products.reshape(-1, size * size, ins * first_size * first_size).transpose(1, 2)
    kernel = F.fold(blocks, output_size=first_size + size - 1, kernel_size=first_size)
    return kernel.view(*lead, outs, ins, *kernel.shape[-2:])


def composed_kernel(generator: Generator) -> torch.Tensor:
    """G's effective 13x13 correlation kernel, differentiable w.r.t. every layer's weights."""
    return compose_weights([layer.weight for layer in generator.layers])


def compose_weights(weights: list[torch.Tensor]) -> torch.Tensor:
    """The effective kernel (..., 13, 13) of G's layer weights (each with the same leading dimensions).

    Composed from the last layer backwards, so every intermediate has a single output channel
    (a few small matmuls instead of pushing a 64-channel delta image through the network).
    """
    kernel = weights[-1]
    for weight in reversed(weights[:-1]):
        kernel = _compose(weight, kernel)
    return kernel[..., 0, 0, :, :]


def composed_kernel_by_delta(generator: Generator) -> torch.Tensor:
    """The published way: push a delta through the layers (first padded by 12) and flip the result.

    Kept as the reference that :func:`composed_kernel` is tested against.
    """
    weight = generator.layers[0].weight
    x = torch.ones(1, 1, 1, 1, dtype=weight.dtype, device=weight.device)
    x = F.conv2d(x, weight, padding=generator.kernel_size - 1)
    for layer in generator.layers[1:]:
        x = F.conv2d(x, layer.weight)
    return x[0, 0].flip(0, 1)


def generate(x: torch.Tensor, kernel: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """G's output through its composed kernel: one strided correlation of (B, 1, H, W) images."""
    return F.conv2d(x, kernel[None, None], stride=stride)


class Discriminator(nn.Module):
    """Fully convolutional patch discriminator with a 7x7 receptive field: a 26x26 crop -> 20x20 map.

    Spectral-normalised 7x7 conv (3 -> C, bias), ``blocks`` x [SN 1x1 conv, BatchNorm, ReLU], SN 1x1
    conv -> 1, sigmoid. Weights are initialised (Xavier-normal gain 0.1, zero bias, BatchNorm weight
    ~ N(1, 0.02)) before spectral normalisation is attached, so its power iteration starts from them.
    """

    def __init__(self, channels: int = 64, blocks: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [self._conv(in_channels, channels, D_RECEPTIVE_FIELD)]
        for _ in range(blocks):
            layers += [self._conv(channels, channels, 1), self._batch_norm(channels), nn.ReLU(inplace=True)]
        layers += [self._conv(channels, 1, 1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)
        # state_dict prefixes of the convolutions and BatchNorms, in order (kernelgan_fused reads them)
        self.conv_names = [f"body.{i}" for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
        self.bn_names = [f"body.{i}" for i, layer in enumerate(layers) if isinstance(layer, nn.BatchNorm2d)]

    @staticmethod
    def _conv(cin: int, cout: int, size: int) -> nn.Module:
        conv = nn.Conv2d(cin, cout, size, bias=True)
        nn.init.xavier_normal_(conv.weight, gain=0.1)
        nn.init.zeros_(conv.bias)
        return spectral_norm(conv)

    @staticmethod
    def _batch_norm(channels: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(channels)
        nn.init.normal_(bn.weight, 1.0, 0.02)
        nn.init.zeros_(bn.bias)
        return bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers by ``state_dict`` name: the module's own tensors, not copies."""
        return {**dict(self.named_parameters()), **dict(self.named_buffers())}
