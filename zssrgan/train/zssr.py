"""ZSSR: an image-specific CNN trained on the image's own father/son pairs (docs/algorithms.md, ZSSR).

Each step crops an "HR father" from the input (augmented in the original configuration), degrades
it with the stage's kernel into an "LR son" and teaches the network son -> father. The kernel is
centred with ``kernel_shift`` for the stage's scale factor, so sons sit where bicubic
interpolation expects them and the output is pixel-aligned with a ground truth degraded in
MATLAB's geometry (as ``zssrgan.datasets`` degrades). Everything
per step stays on the device (crops, warps, sons, the bicubic upscale, the losses recorded for
every step); the host reads the device only for the reconstruction MSE the learning-rate policy
needs every ``test_every`` steps, and takes the recorded losses in the same pause.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import Callable, Mapping, Optional, Protocol, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..archs.zssr_arch import ZSSRNet
from ..config import Config, ConfigError, ZSSRConfig, ZSSRVariant
from ..device import resolve_device, seed_everything
from ..errors import InputError
from ..kernels import (RECENTRING_PAD, KernelError, analytic_x4_kernel, kernel_shift, kernel_shift_torch,
                       validate_kernel)
from ..losses import gradient_weight_map, weighted_l1
from ..progress import Callback, StepValues
from ..resize import imresize_torch

ExtraLoss = Callable[[torch.Tensor], tuple[torch.Tensor, Mapping[str, float]]]
POLYFIT_MIN_POINTS = 5  # numpy.polyfit(..., 1, cov=True) needs more than deg + 3 points


class LearningRatePolicy:
    """The published policy: every ``lr_check_every`` steps, once more than ``lr_min_iters``
    steps passed since the last change, fit a line to the last ``lr_slope_range / test_every``
    reconstruction MSEs; when -``lr_slope_factor`` * slope < the slope's standard error
    (sqrt of its variance in ``numpy.polyfit(..., 1, cov=True)``), divide the rate by ``lr_decay``.
    Training stops when the rate falls below ``min_lr``."""

    def __init__(self, cfg: ZSSRConfig) -> None:
        self.cfg = cfg
        self.lr = cfg.lr
        self.steps: list[int] = []
        self.mse: list[float] = []
        self.changed_at = [0]

    def record(self, step: int, mse: float) -> None:
        self.steps.append(step)
        self.mse.append(mse)

    def update(self, step: int) -> bool:
        """Apply the check due after ``step``; True when the rate changed."""
        cfg = self.cfg
        if (step + 1) % cfg.lr_check_every or step - self.changed_at[-1] <= cfg.lr_min_iters:
            return False
        window = max(cfg.lr_slope_range // cfg.test_every, POLYFIT_MIN_POINTS)
        if len(self.mse) < window:
            return False
        (slope, _), covariance = np.polyfit(self.steps[-window:], self.mse[-window:], 1, cov=True)
        if -cfg.lr_slope_factor * slope < math.sqrt(covariance[0, 0]):
            self.lr /= cfg.lr_decay
            self.changed_at.append(step)
            return True
        return False

    @property
    def finished(self) -> bool:
        return self.lr < self.cfg.min_lr


def _to_device(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(image, dtype=np.float32), device=device).permute(2, 0, 1)[None]


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"{name} must be an HxWx3 float image in [0, 1], got {image.dtype} of shape {image.shape}")
    if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 1:
        raise ValueError(f"{name} must hold finite values in [0, 1]; load images with zssrgan.io.load_image")
    return image


def check_crop(cfg: ZSSRConfig, sf: float) -> None:
    """``zssr.crop`` must leave sons of at least 4 pixels a side at ``sf``."""
    if cfg.crop < 4 * sf:
        raise ConfigError(f"zssr.crop must be at least {math.ceil(4 * sf)} at x{sf:g} (sons of 4 pixels a side), "
                          f"got {cfg.crop}")


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 rotations/flips (k < 4: rotate k x 90 degrees; else rotate, then mirror)."""
    x = torch.rot90(x, k % 4, dims=(2, 3))
    return torch.flip(x, dims=(3,)) if k >= 4 else x


def undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    x = torch.flip(x, dims=(3,)) if k >= 4 else x
    return torch.rot90(x, -(k % 4), dims=(2, 3))


def median(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Element-wise median as numpy's (the mean of the two middle values for an even count)."""
    ordered = torch.stack(list(outputs)).sort(dim=0).values
    n = len(outputs)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


class ZSSRTrainer:
    """One stage (one scale factor) of ZSSR on one image.

    ``extra_sources`` are earlier stages' outputs (x2 before x4): the published code adds them to
    the fathers' sources, where the augmentation's random scale picks them (never without
    augmentation, whose fathers always come from the input). ``init_net`` continues from an
    earlier stage's network, as the published gradual SR does.
    """

    def __init__(self, lr_image: np.ndarray, sf: float, kernel: Optional[np.ndarray], cfg: ZSSRConfig,
                 variant: ZSSRVariant, *, device: torch.device, rng: np.random.Generator, real: bool = False,
                 extra_sources: Sequence[np.ndarray] = (), init_net: Optional[nn.Module] = None) -> None:
        lr_image = _check_image(lr_image, "the LR image")
        if not sf > 1:
            raise ValueError(f"the scale factor must be > 1, got {sf!r}")
        self.sf, self.cfg, self.variant = float(sf), cfg, variant
        self.device, self.rng, self.real = device, rng, real
        cuda = device.type == "cuda"
        amp = cuda and cfg.mixed_precision and torch.cuda.is_bf16_supported()  # no fp16: L1 grads underflow
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else nullcontext
        self.memory_format = torch.channels_last if cuda and cfg.channels_last else torch.contiguous_format
        self.noise_std = cfg.real_noise_std if real else 0.0
        self.bp_iters = 0 if real else variant.back_projection_iters

        self.input = _to_device(lr_image, device)
        sources = [lr_image] + [_check_image(s, "an extra father source") for s in extra_sources]
        self.base_scales = [s.shape[0] / lr_image.shape[0] for s in sources]
        # Weights ride along as a 4th channel, so crops and warps treat image and weights alike.
        self.sources = [_to_device(np.dstack([s, gradient_weight_map(s)]) if variant.grad_weighted_loss else s,
                                   device) for s in sources]
        self.crop = self._crop_size(lr_image.shape)
        rows = torch.arange(self.crop, dtype=torch.float32, device=device)
        self._grid_y, self._grid_x = torch.meshgrid(rows, rows, indexing="ij")

        self._kernel_ok: Optional[torch.Tensor] = None  # device kernels' validity, read at reports
        self.set_kernel(kernel)
        self.net = ZSSRNet(cfg.channels, cfg.depth)
        if init_net is None:
            self.net.reset_parameters(torch.Generator().manual_seed(int(rng.integers(2**62))))
        else:
            self.net.load_state_dict(init_net.state_dict())
        self.net.to(device=device, memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.policy = LearningRatePolicy(cfg)
        self.noise = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        self.iteration = 0
        self.l1: Optional[torch.Tensor] = None  # this step's reconstruction L1 (detached), for extensions
        self.values = StepValues()  # every step's values until reported
        self._synced = False  # the host waited for the device since the last report

    def _crop_size(self, shape: Sequence[int]) -> int:
        """cfg.crop, but no larger than the input (the published code zero-padded small images to
        the crop size, training on black borders) and a multiple of an integer sf, so the son's
        upscale is exactly sf."""
        check_crop(self.cfg, self.sf)
        crop = min(self.cfg.crop, *shape[:2])
        if float(self.sf).is_integer():
            crop -= crop % int(self.sf)
        if crop < 4 * self.sf:
            raise InputError(f"the LR image ({shape[0]}x{shape[1]}) is too small for ZSSR at x{self.sf:g}: "
                             f"its sons would be under 4 pixels; use an image of at least {math.ceil(4 * self.sf)} "
                             "pixels a side")
        return crop

    def set_kernel(self, kernel: Union[np.ndarray, torch.Tensor, None], side: Optional[torch.Tensor] = None) -> None:
        """The stage's degradation: a numeric kernel (centred for this sf) or MATLAB bicubic (None).

        Centring puts the kernel's centre of mass where MATLAB's bicubic geometry puts an LR pixel
        (half a pixel between HR pixels at x2): the sons then sit where bicubic interpolation
        expects them, the network only learns a small residual, and the output is pixel-aligned
        with a ground truth degraded in that geometry (see ``zssrgan.datasets``).

        A tensor is centred on the device (e2e hands G's kernel every step): a canvas of the
        ``*_torch`` functions of ``zssrgan.kernels`` with its ``side``, or a whole kernel. The
        centred kernel is validated at the next report, when the host reads the device anyway.
        """
        if kernel is None:
            self.kernel = None
        elif isinstance(kernel, torch.Tensor):
            self._set_kernel_tensor(kernel, side)
        else:
            if side is not None:
                raise KernelError("side describes a kernel tensor's canvas; a NumPy kernel is used whole")
            centred = kernel_shift(validate_kernel(kernel), self.sf)
            self.kernel = torch.as_tensor(centred, dtype=torch.float32, device=self.device)

    def _set_kernel_tensor(self, kernel: torch.Tensor, side: Optional[torch.Tensor]) -> None:
        if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or not kernel.is_floating_point():
            raise KernelError(f"a kernel tensor must be a square float matrix, got {kernel.dtype} of shape "
                              f"{tuple(kernel.shape)}")
        kernel = kernel.detach().to(self.device, torch.float64)
        # a canvas moves by at most a tap or two; a whole kernel gets the padding any shift needs
        centred = kernel_shift_torch(kernel, self.sf, side, None if side is None else RECENTRING_PAD)[0]
        ok = torch.isfinite(centred).all() & (centred.sum() > 0)  # what is used, not what was given
        self._kernel_ok = ok if self._kernel_ok is None else self._kernel_ok & ok
        self.kernel = centred.float()

    def check_kernel(self) -> None:
        """Raise KernelError if a kernel tensor set since the last check was not finite or had no
        positive sum (what ``validate_kernel`` rejects). Waits for the device."""
        ok, self._kernel_ok = self._kernel_ok, None
        if ok is not None and not bool(ok):
            raise KernelError("a kernel set on the device (G's, in e2e ZSSRGAN) is not finite or has no positive "
                              "sum, e.g. no tap left after removing negligible values")

    @property
    def finished(self) -> bool:
        return self.policy.finished or self.iteration >= self.cfg.iters

    # ---- data -------------------------------------------------------------------------------

    def degrade(self, hr: torch.Tensor) -> torch.Tensor:
        """father -> son: downscale by sf with the kernel; real photos also get noise."""
        son = imresize_torch(hr, scale=1.0 / self.sf, kernel=self.kernel)
        if self.noise_std:
            son = son + self.noise_std * torch.randn(son.shape, generator=self.noise, device=self.device)
        return son.clamp(0.0, 1.0)

    def _father(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """A father crop (and its loss weights), augmented as the published configuration says:
        leave as is, one of the 8 rotations/flips, or a random affine warp (bicubic)."""
        cfg, rng, c = self.cfg, self.rng, self.crop
        mode = "as_is"
        if self.variant.augment:
            u = rng.random()
            mode = ("as_is" if u < cfg.augment_leave_as_is else
                    "no_interp" if u < cfg.augment_leave_as_is + cfg.augment_no_interp else "affine")
        scale = 1.0 if mode == "as_is" else rng.uniform(cfg.augment_min_scale, self.base_scales[-1])
        index = next(i for i, base in enumerate(self.base_scales) if base > scale - 1e-6)
        source = self.sources[index]
        if mode == "affine":
            crop = self._warp(source, scale / self.base_scales[index])
        else:
            h, w = source.shape[2:]
            top, left = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
            crop = source[:, :, top:top + c, left:left + c]
            if mode == "no_interp":
                crop = dihedral(crop, int(rng.integers(8)))
        father = crop[:, :3].clamp(0.0, 1.0) if mode == "affine" else crop[:, :3]
        return father, (crop[:, 3:] if crop.shape[1] == 4 else None)

    def _warp(self, source: torch.Tensor, scale: float) -> torch.Tensor:
        """A crop of the source scaled by ``scale`` (with a random x/y scale difference and mirror),
        rotated by a random angle and sheared, bicubic, zero outside the source.

        The published warp placed its crop window relative to the unscaled image, so shrunken
        fathers were partly black; here the window is drawn inside the scaled image.
        """
        cfg, rng, c = self.cfg, self.rng, self.crop
        h, w = source.shape[2:]
        diff = rng.standard_normal() * cfg.augment_scale_diff_sigma
        mirror = 1.0 if rng.standard_normal() >= 0 else -1.0
        theta = rng.random() * 2 * math.pi
        shear_x, shear_y = rng.standard_normal(2) * cfg.augment_shear_sigma
        rotation = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
        forward = (np.array([[1.0, shear_x], [shear_y, 1.0]]) @ rotation
                   @ np.diag([mirror * (scale + diff / 2), scale - diff / 2]))
        inverse = np.linalg.inv(forward)
        # Output pixel p maps to source pixel inverse @ (p - out_centre) + src_centre.
        out_centre = (c - 1) / 2 - (rng.random(2) - 0.5) * np.maximum(scale * np.array([w, h]) - c, 0)
        src_centre = np.array([(w - 1) / 2, (h - 1) / 2])
        offset = src_centre - inverse @ out_centre
        # In grid_sample's [-1, 1] coordinates (align_corners): Python floats, no host-device copy.
        norm = 2.0 / np.array([max(w - 1, 1), max(h - 1, 1)])[:, None]
        (ax, bx, cx), (ay, by, cy) = (np.hstack([norm * inverse, norm * offset[:, None] - 1])).tolist()
        grid = torch.stack([ax * self._grid_x + bx * self._grid_y + cx,
                            ay * self._grid_x + by * self._grid_y + cy], dim=-1)[None]
        return F.grid_sample(source, grid, mode="bicubic", padding_mode="zeros", align_corners=True)

    # ---- network ----------------------------------------------------------------------------

    def forward(self, lr: torch.Tensor, output_shape: Sequence[int]) -> torch.Tensor:
        """Network output (float32, not clipped) for ``lr`` upscaled bicubically to ``output_shape``."""
        upscaled = imresize_torch(lr, output_shape=tuple(output_shape))
        with self.autocast():
            return self.net(upscaled.contiguous(memory_format=self.memory_format)).float()

    def step(self, extra_loss: Optional[ExtraLoss] = None) -> None:
        """One training step. ``extra_loss(output)`` gets this step's network output (N,3,h,w on the
        device, [0, 1] up to the network's overshoot: not clipped, so gradients flow) and returns
        (a term added to the loss, {name: float or 0-d tensor}).

        Records ``lr``, ``loss_l1`` (this step's reconstruction loss) and the extra loss's values
        for every step, and ``rec_mse`` (the policy's reconstruction MSE) every ``test_every``
        steps; :meth:`reported` hands them over.
        """
        self.net.train()
        step = self.iteration
        father, weights = self._father()
        output = self.forward(self.degrade(father), father.shape[2:])
        loss = weighted_l1(output, father, weights)
        self.l1 = loss.detach()
        self.values.add(step, {"lr": self.policy.lr, "loss_l1": self.l1})
        if extra_loss is not None:
            term, extra_values = extra_loss(output)
            loss = loss + term
            self.values.add(step, extra_values)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

        if step % self.cfg.test_every == 0:
            self.check_kernel()
            rec_mse = self.reconstruction_mse()
            self.policy.record(step, rec_mse)
            self.values.add(step, {"rec_mse": rec_mse})
            self._synced = True
        if self.policy.update(step):
            for group in self.optimizer.param_groups:
                group["lr"] = self.policy.lr
        self.iteration += 1

    def reported(self) -> list[tuple[int, dict[str, float]]]:
        """(step, values) of every step recorded since the last call, once the host has waited for
        the device anyway (every ``test_every`` steps) or training is over; else none, so that the
        steps in between never wait for the device."""
        if not (self._synced or self.finished):
            return []
        self._synced = False
        return self.values.flush()

    @torch.no_grad()
    def reconstruction_mse(self) -> float:
        """MSE between the input and the network's output for the input's own son."""
        output = self.forward(self.degrade(self.input), self.input.shape[2:]).clamp(0.0, 1.0)
        return float(torch.mean((output - self.input) ** 2))

    def back_project(self, sr: torch.Tensor) -> torch.Tensor:
        """sr += upscale(lr - degrade(sr)), ``bp_iters`` times, clipped to [0, 1]."""
        for _ in range(self.bp_iters):
            residual = self.input - imresize_torch(sr, output_shape=self.input.shape[2:], kernel=self.kernel)
            sr = (sr + imresize_torch(residual, output_shape=sr.shape[2:])).clamp(0.0, 1.0)
        return sr

    @torch.no_grad()
    def infer(self) -> np.ndarray:
        """SR of the stage input (HxWx3 float32 in [0, 1]): the network on each of the 8
        rotations/flips (self-ensemble) or on the input alone, each output back-projected, their
        median, back-projected again (as published, also with a single output)."""
        self.check_kernel()
        self.net.eval()
        out_shape = tuple(math.ceil(n * self.sf) for n in self.input.shape[2:])
        outputs = []
        for k in range(8 if self.variant.self_ensemble else 1):
            x = dihedral(self.input, k)
            shape = out_shape if k % 2 == 0 else out_shape[::-1]
            outputs.append(self.back_project(undo_dihedral(self.forward(x, shape).clamp(0.0, 1.0), k)))
        sr = self.back_project(median(outputs))[0].permute(1, 2, 0).cpu().numpy()
        return sr.astype(np.float32)


class StageExtension(Protocol):
    """What ZSSRGAN plugs into every stage: an extra loss on the output, and work after each step
    (training a discriminator, updating the kernel with ``trainer.set_kernel``, ...)."""

    def loss(self, output: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]: ...

    def after_step(self, step: int, trainer: ZSSRTrainer) -> dict[str, float]: ...


def stage_kernels(scale: int, kernels: Optional[Mapping[int, np.ndarray]]) -> list[tuple[int, Optional[np.ndarray]]]:
    """(sf, kernel) per stage: x2 as one stage, x4 gradually (x2 with k2, then x4 with k4 or the
    analytic kernel of k2); no kernels means MATLAB bicubic."""
    if scale not in (2, 4):
        raise ValueError(f"ZSSR runs at scale 2 or 4, got {scale!r}")
    kernels = dict(kernels or {})
    if scale == 4 and 4 not in kernels and 2 in kernels:
        kernels[4] = analytic_x4_kernel(validate_kernel(kernels[2], "the x2 kernel"))
    if kernels and any(sf not in kernels for sf in (2, scale)):
        raise ValueError(f"x{scale} ZSSR with kernels needs the x2 kernel (kernels={{2: k2}} or {{2: k2, 4: k4}}); "
                         f"got kernels for scales {sorted(kernels)}")
    return [(sf, kernels.get(sf)) for sf in ((2, 4) if scale == 4 else (2,))]


def zssr_super_resolve(lr: np.ndarray, scale: int, kernels: Optional[Mapping[int, np.ndarray]], cfg: Config,
                       variant: ZSSRVariant, *, callback: Optional[Callback] = None,
                       extension: Optional[Callable[[int, ZSSRTrainer], StageExtension]] = None
                       ) -> tuple[np.ndarray, dict[str, float]]:
    """Super-resolve ``lr`` by ``scale`` with ZSSR (gradually at x4). Reports each step as
    ``callback("zssr_x{sf}", step, values)``; returns (SR image HxWx3 float32 in [0, 1],
    seconds per phase: ``zssr_x{sf}_train`` and ``zssr_x{sf}_infer``)."""
    lr = _check_image(lr, "the LR image")
    stages = stage_kernels(scale, kernels)
    check_crop(cfg.zssr, max(sf for sf, _ in stages))  # before any stage trains
    device = resolve_device(cfg.device)
    rng = seed_everything(cfg.seed)
    timings: dict[str, float] = {}
    outputs: list[np.ndarray] = []
    net: Optional[nn.Module] = None
    for sf, kernel in stages:
        phase = f"zssr_x{sf}"
        start = time.perf_counter()
        trainer = ZSSRTrainer(lr, sf, kernel, cfg.zssr, variant, device=device, rng=rng, real=cfg.real,
                              extra_sources=outputs, init_net=net)
        ext = extension(sf, trainer) if extension is not None else None
        while not trainer.finished:
            step = trainer.iteration
            trainer.step(ext.loss if ext is not None else None)
            if ext is not None:
                trainer.values.add(step, ext.after_step(step, trainer))
            for row in trainer.reported():
                if callback is not None:
                    callback(phase, *row)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings[f"{phase}_train"] = time.perf_counter() - start
        start = time.perf_counter()
        outputs.append(trainer.infer())
        timings[f"{phase}_infer"] = time.perf_counter() - start
        net = trainer.net
    return np.clip(outputs[-1], 0.0, 1.0).astype(np.float32), timings
