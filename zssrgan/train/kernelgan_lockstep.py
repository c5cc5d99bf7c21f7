"""Several KernelGAN runs in lock-step: K independent GANs trained as one batched computation.

Restarts with other seeds and candidate estimates make several short KernelGAN runs per image the
normal case. One run's step is bound by the launch cost of small operations, not by arithmetic, so
K runs whose weights are stacked along a leading dimension cost little more per step than one.

Each run stays fully its own GAN: its own image, seed, initial weights, crops, noise stream, loss
weights and bicubic-phase end (it keeps its own :class:`KernelGANTrainer`, whose data and schedule
code serve it). Only the arithmetic is shared: G's kernels are composed as a batch, G runs as a
grouped convolution, D as :func:`~zssrgan.archs.kernelgan_fused.discriminator_train_forward` over
stacked tensors, and one Adam updates the stacked weights (Adam is elementwise: the same as K
Adams). Each run's result equals a separate :func:`~zssrgan.train.kernelgan.estimate_kernel` run
up to float rounding.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import stack_module_state

from ..archs.kernelgan_fused import discriminator_train_forward
from ..config import Config, ConfigError, preset
from ..device import at_most_threads, resolve_device
from ..errors import InputError
from ..losses import (adversarial_l1, bicubic_loss, boundaries_loss, centralized_loss, sparsity_loss,
                      sum_to_one_loss)
from ..progress import Callback, StepValues, Timings
from ..results import KernelEstimate
from .kernelgan import _LOSS_NAMES, REPORT_EVERY, SCALE, KernelGANTrainer, SharedKernel
from .lean_adam import LeanAdam

_TERMS = ("bicubic", "sum2one", "boundaries", "centralized", "sparse")


class LockstepKernelGAN:
    """``trainers`` (built alike but for image and seed) trained together, step for step.

    Their modules are copied into stacked tensors at construction and written back by
    :meth:`finish`; in between only the stacked tensors train.
    """

    def __init__(self, trainers: Sequence[KernelGANTrainer]) -> None:
        if not trainers:
            raise InputError("lock-step training needs at least one run")
        cfg, device = trainers[0].cfg, trainers[0].device
        if any(t.cfg != cfg or t.device != device for t in trainers):
            raise InputError("lock-step runs must share one KernelGAN configuration and device")
        if any(t.fixed_kernel is not None for t in trainers):
            raise InputError("lock-step runs train their generators; a fixed kernel has none to train")
        if not trainers[0].D.bn_names:
            raise ConfigError("lock-step runs need kernelgan.d_blocks >= 1")
        self.trainers, self.cfg = list(trainers), cfg
        g_params, _ = stack_module_state([t.G for t in trainers])
        d_params, d_buffers = stack_module_state([t.D for t in trainers])
        self.g_weights = [g_params[f"layers.{n}.weight"] for n in range(len(trainers[0].G.layers))]
        self.kernels = SharedKernel(lambda: self.g_weights)
        self.d_state = {**d_params, **d_buffers}
        # the convolution biases before a BatchNorm get no gradient (see archs.kernelgan_fused)
        self.d_params = list(d_params.values())
        betas = (cfg.beta1, 0.999)
        self.opt_g = LeanAdam(self.g_weights, lr=cfg.lr_g, betas=betas)
        self.opt_d = LeanAdam(self.d_params, lr=cfg.lr_d, betas=betas)
        self.mask = trainers[0].mask
        self._lambda_key: tuple = ()
        self._lambdas = torch.empty(0)

    # --- the batched computation -----------------------------------------------------------------
    def _generate(self, crops: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """Each run's crops (K, N, 1, H, W) through its own kernel (K, 13, 13): one grouped convolution."""
        runs, n = crops.shape[:2]
        weight = kernels[:, None, None].expand(runs, n, 1, *kernels.shape[-2:]).reshape(runs * n, 1, *kernels.shape[-2:])
        out = F.conv2d(crops.reshape(1, runs * n, *crops.shape[-2:]), weight, stride=SCALE, groups=runs * n)
        return out.view(runs, n, 1, *out.shape[-2:])

    def _to_discriminator(self, fakes: torch.Tensor) -> torch.Tensor:
        """(K, 3B, 1, h, w) -> (K, B, 3, h, w), as ``KernelGANTrainer.to_discriminator`` per run."""
        return fakes.reshape(fakes.shape[0], -1, 3, *fakes.shape[-2:])

    def _loss_weights(self) -> torch.Tensor:
        """The runs' current loss weights (K, 5), rebuilt on the device only when one changes."""
        key = tuple(tuple(t.lambdas[name] for name in _TERMS) for t in self.trainers)
        if key != self._lambda_key:
            self._lambda_key = key
            self._lambdas = torch.tensor(key, dtype=self.g_weights[0].dtype, device=self.mask.device)
        return self._lambdas

    def g_step(self, i: int) -> torch.Tensor:
        """Every run's generator update (``KernelGANTrainer.g_step``); its losses (K, 7)."""
        inputs = [t.g_input(i) for t in self.trainers]
        crops, targets = torch.stack([c for c, _ in inputs]), torch.stack([t for _, t in inputs])
        kernels = self.kernels(consume=True)
        fakes = self._generate(crops, kernels)
        maps = discriminator_train_forward(self.trainers[0].D, self._to_discriminator(fakes), 1, self.d_state,
                                           weight_grads=False)
        per_run = (1, 2, 3, 4, 5)
        loss_adv = adversarial_l1(maps, real=True, dim=per_run)
        terms = torch.stack([bicubic_loss(fakes, targets, dim=(1, 2, 3, 4)), sum_to_one_loss(kernels),
                             boundaries_loss(kernels, self.mask), centralized_loss(kernels, SCALE),
                             sparsity_loss(kernels)], -1)
        lambdas = self._loss_weights()
        # terms weighted 0 in every run stay out of the graph, as in a single run
        used = [n for n in range(len(_TERMS)) if any(row[n] for row in self._lambda_key)]
        total = loss_adv + (lambdas[:, used] * terms[:, used]).sum(-1)
        self.opt_g.zero_grad(set_to_none=True)
        total.sum().backward(inputs=self.g_weights)
        self.opt_g.step()
        relative = (terms[:, 0] / targets.square().mean((1, 2, 3, 4))).detach()
        for trainer, value in zip(self.trainers, relative.unbind(0)):
            if trainer._similar_since is None:
                trainer.record_bicubic(i, value)
        return torch.cat([loss_adv[:, None], total[:, None], terms], 1).detach()

    def d_step(self, i: int) -> torch.Tensor:
        """Every run's discriminator update (``KernelGANTrainer.d_step``); its losses (K, 3)."""
        with torch.no_grad():
            crops = torch.stack([t.g_input(i)[0] for t in self.trainers])
            fakes = self._to_discriminator(self._generate(crops, self.kernels()))
        batches = [torch.cat([t.real_crop(i), t._noisy(fake)]) for t, fake in zip(self.trainers, fakes)]
        maps = discriminator_train_forward(self.trainers[0].D, torch.stack(batches), 2, self.d_state)
        per_run = (1, 2, 3, 4)
        loss_real, loss_fake = adversarial_l1(maps[:, 0], True, per_run), adversarial_l1(maps[:, 1], False, per_run)
        loss = (loss_real + loss_fake) * 0.5
        self.opt_d.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.opt_d.step()
        return torch.stack([loss, loss_real, loss_fake], 1).detach()

    def update_schedule(self, i: int) -> None:
        """Each run's own schedule (``KernelGANTrainer.update_schedule``); the learning rates, alike
        in every run, follow the first run's."""
        for trainer in self.trainers:
            trainer.update_schedule(i)
        for mine, theirs in ((self.opt_g, self.trainers[0].opt_g), (self.opt_d, self.trainers[0].opt_d)):
            for group in mine.param_groups:
                group["lr"] = theirs.param_groups[0]["lr"]

    def step(self, i: int) -> torch.Tensor:
        """Every run's G step, D step and schedule update; the losses (K, 10) in ``_LOSS_NAMES`` order.
        The thread cap is per run: K runs' operations are K times larger and split well."""
        with at_most_threads(self.cfg.cpu_threads * len(self.trainers), self.mask.device):
            losses = torch.cat([self.g_step(i), self.d_step(i)], 1)
            self.update_schedule(i)
        return losses

    # --- the loop ----------------------------------------------------------------------------------
    def train(self, iters: Optional[int] = None) -> None:
        """Run ``iters`` (default ``cfg.iters``) steps, recording every run's steps in its trainer's
        history (and callback), in batches of ``REPORT_EVERY`` steps."""
        records = [StepValues() for _ in self.trainers]

        def report() -> None:  # step by step, each step's runs in order (as a shared callback expects)
            for rows in zip(*(values.flush() for values in records)):
                for trainer, (step, row) in zip(self.trainers, rows):
                    trainer.history("kernelgan", step, row)

        for i in range(self.cfg.iters if iters is None else iters):
            settings = [t._settings() for t in self.trainers]
            for values, setting, losses in zip(records, settings, self.step(i).unbind(0)):
                values.add(i, setting, packed=(_LOSS_NAMES, losses))
            if len(records[0]) == REPORT_EVERY:
                report()
        report()

    def finish(self) -> None:
        """Write each run's trained weights and buffers back into its trainer's G and D."""
        with torch.no_grad():
            for k, trainer in enumerate(self.trainers):
                for layer, weight in zip(trainer.G.layers, self.g_weights):
                    layer.weight.copy_(weight[k])
                trainer.D.load_state_dict({name: value[k] for name, value in self.d_state.items()})


def train_lockstep(images: Union[np.ndarray, Sequence[np.ndarray]], cfg: Optional[Config] = None,
                   seeds: Optional[Sequence[int]] = None, *,
                   callbacks: Optional[Sequence[Optional[Callback]]] = None) -> list[KernelEstimate]:
    """KernelGAN estimates of K runs trained in lock-step: run k on ``images[k]`` with seed
    ``seeds[k]``. Each estimate equals ``estimate_kernel(images[k], 2, cfg with seed=seeds[k])``
    up to float rounding (same weights, crops, noise and schedule), at a fraction of the cost.

    ``images``: one HxWx3 image for every run (restarts: pass ``seeds``) or a sequence of K images
    (candidates; any sizes). ``seeds``: one per run, default ``cfg.seed`` for every run. ``cfg``
    defaults to the paper preset; ``cfg.real``, ``cfg.device`` and ``cfg.kernelgan`` apply to all.
    ``callbacks``: one per run (or None), called as ``estimate_kernel``'s callback is.
    Each estimate's ``kernelgan_train`` timing is the whole group's training time.
    """
    cfg = cfg or preset("paper")
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images] * (len(seeds) if seeds is not None else 1)
    images = list(images)
    seeds = [cfg.seed] * len(images) if seeds is None else list(seeds)
    if len(seeds) != len(images):
        raise InputError(f"lock-step runs need one seed per image: got {len(images)} images and {len(seeds)} seeds")
    callbacks = [None] * len(images) if callbacks is None else list(callbacks)
    if len(callbacks) != len(images):
        raise InputError(f"lock-step runs need one callback (or None) per run: got {len(callbacks)} for {len(images)}")
    device = resolve_device(cfg.device)
    timings = Timings()
    with timings.phase("kernelgan"):
        trainers = [KernelGANTrainer(image, cfg.kernelgan, device=device, rng=np.random.default_rng(seed), real=cfg.real)
                    for image, seed in zip(images, seeds)]
        for trainer, callback in zip(trainers, callbacks):
            trainer.history.forward = callback
        group = LockstepKernelGAN(trainers)
        with timings.phase("kernelgan_train"):
            group.train()
        group.finish()
        estimates = [trainer.estimate() for trainer in trainers]
    for estimate in estimates:
        estimate.timings.update(timings.as_dict())
    return estimates
