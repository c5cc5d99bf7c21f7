"""ZSSR's image-specific network (docs/algorithms.md, ZSSR)."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


class ZSSRNet(nn.Module):
    """``depth`` 3x3 convolutions (``channels`` wide, no bias, ReLU after all but the last) that
    learn the residual over the interpolated input.

    The input is the LR image already upscaled (bicubic) to the output size: the caller does the
    interpolation so that it can reuse one upscale for the loss and the network. Images in [0, 1].
    """

    def __init__(self, channels: int = 64, depth: int = 8, image_channels: int = 3) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"ZSSR needs at least 2 layers, got depth {depth}")
        widths = [image_channels] + [channels] * (depth - 1) + [image_channels]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False))
            if i < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Normal init with std sqrt(0.1 / fan_in): small weights, so training starts near the
        interpolation (the published variance for residual learning)."""
        with torch.no_grad():
            for conv in self.body:
                if isinstance(conv, nn.Conv2d):
                    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
                    conv.weight.normal_(0.0, math.sqrt(0.1 / fan_in), generator=generator)

    def forward(self, upscaled: torch.Tensor) -> torch.Tensor:
        return upscaled + self.body(upscaled)
