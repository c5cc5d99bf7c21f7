"""ZSSRGAN (docs/algorithms.md, ZSSRGAN): ZSSR trained with KernelGAN's discriminator as an extra loss.

ZSSR's loss is ``L1 + r / (1 - r) * c * L_adv``: ``L1`` is ZSSR's own reconstruction loss,
``L_adv`` is D's adversarial loss on ZSSR's output judged as "real" (D has learned the patches of
the input image, so the term pulls the SR image's patches towards the image's own), ``r`` is
``cfg.zssrgan.disc_ratio`` and ``c`` puts the two terms on one scale (:class:`AdversarialWeight`).

Three modes, one per method:

- ``fixed``: D from a finished KernelGAN run, frozen;
- ``serial``: D from a finished KernelGAN run, trained on against ZSSR (real: crops of the input,
  fake: ZSSR's outputs) while ZSSR trains;
- ``e2e`` (semi end-to-end): KernelGAN's G, ZSSR and D from scratch in one loop, one component
  updated at a time with the other two frozen; ZSSR uses G's current kernel at every step.

"Frozen" means frozen: eval mode (no BatchNorm statistics and no spectral-norm power iteration
updated) and no gradients into the parameters (:func:`frozen`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Optional

import numpy as np
import torch
from torch import nn

from ..archs.fkp_arch import Critic
from ..archs.kernelgan_arch import Discriminator
from ..config import Config, ConfigError
from ..device import resolve_device
from ..kernels import analytic_x4_kernel_torch, postprocess_kernel, postprocess_kernel_torch
from ..losses import adversarial_l1
from ..progress import Callback
from ..results import DiscriminatorState, KernelEstimate
from .kernelgan import KernelGANTrainer
from .zssr import ZSSRTrainer, zssr_super_resolve

MODES = ("fixed", "serial", "e2e")


class AdversarialWeight:
    """The weight ``r / (1 - r) * c`` of the adversarial term, with ``c`` a running magnitude ratio.

    ``c = mean|L1| / mean|L_adv|`` over exponential running means (``momentum`` per step) of the
    detached loss values, so the adversarial term stays ``r / (1 - r)`` times the reconstruction term
    throughout training: with r = 0.5 both weigh the same, with r = 0.2 the adversarial term is a
    quarter of L1, however the two losses drift. The first step's c is exactly L1 / L_adv, which is
    what the ZSSRGAN report measured and then froze for the whole run; ``momentum = 1`` reproduces that. A
    frozen c lets the adversarial term dominate once L1 has fallen by orders of magnitude during
    training (L_adv barely moves), which is why the running ratio is the default.
    """

    def __init__(self, ratio: float, momentum: float = 0.9, eps: float = 1e-8) -> None:
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"zssrgan.disc_ratio must be in (0, 1), got {ratio}")
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"zssrgan.c_momentum must be in [0, 1], got {momentum}")
        self.factor = ratio / (1.0 - ratio)
        self.momentum = momentum
        self.eps = eps
        self.mean_l1: Optional[torch.Tensor] = None  # 0-d, on the losses' device: no host round trip
        self.mean_adv: Optional[torch.Tensor] = None

    def __call__(self, l1: torch.Tensor, adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted adversarial term (differentiable through ``adv`` only) and this step's c,
        after folding this step's |L1| and |L_adv| into the running means."""
        l1_now, adv_now = l1.detach().abs(), adv.detach().abs()
        if self.mean_l1 is None:
            self.mean_l1, self.mean_adv = l1_now, adv_now
        else:
            m = self.momentum
            self.mean_l1 = m * self.mean_l1 + (1.0 - m) * l1_now
            self.mean_adv = m * self.mean_adv + (1.0 - m) * adv_now
        c = self.mean_l1 / self.mean_adv.clamp_min(self.eps)
        return self.factor * c * adv, c


def to_disc_range(image: torch.Tensor) -> torch.Tensor:
    """ZSSR's [0, 1] images to D's [-1, 1] training range (the ZSSRGAN report's code fed D [0, 1] images)."""
    return image * 2.0 - 1.0


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients for ``modules`` inside the block, restored afterwards.

    Gradients still flow *through* a frozen module to its input (ZSSR's output through a frozen D).
    """
    saved = [(m, m.training, [p.requires_grad for p in m.parameters()]) for m in modules]
    for m in modules:
        m.eval()
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m, training, flags in saved:
            m.train(training)
            for p, flag in zip(m.parameters(), flags):
                p.requires_grad_(flag)


class _Means:
    """Sums of detached 0-d device tensors, read as floats (means since the last read) only when
    reported, so the steps in between never wait for the device."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, values: Mapping[str, torch.Tensor]) -> None:
        for name, value in values.items():
            value = value.detach()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.count += 1

    def read(self) -> dict[str, float]:
        if not self.count:
            return {}
        names = list(self.sums)
        means = (torch.stack([self.sums[n] for n in names]) / self.count).tolist()
        self.sums, self.count = {}, 0
        return dict(zip(names, means))


class DiscriminatorKind(NamedTuple):
    """How to rebuild a trained discriminator and the adversarial loss ZSSR minimises against it."""

    build: Callable[..., nn.Module]  # DiscriminatorState.settings as keyword arguments
    adversarial_loss: Callable[[torch.Tensor], torch.Tensor]  # D's output on ZSSR's output -> loss


# The discriminators an estimate can carry, by DiscriminatorState.arch.
DISCRIMINATORS: dict[str, DiscriminatorKind] = {
    "kernelgan": DiscriminatorKind(Discriminator, lambda output: adversarial_l1(output, real=True)),
    # a Wasserstein critic scores, it does not classify: the generator side raises the mean score
    "fkp-critic": DiscriminatorKind(Critic, lambda output: -output.mean()),
}


def load_discriminator(saved: DiscriminatorState, device: torch.device) -> tuple[nn.Module, DiscriminatorKind]:
    """A trained discriminator (parameters and buffers) from an estimate, on ``device``, with its kind."""
    if saved.arch not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator {saved.arch!r}; known: {', '.join(DISCRIMINATORS)}")
    kind = DISCRIMINATORS[saved.arch]
    disc = kind.build(**saved.settings)
    disc.load_state_dict({name: torch.from_numpy(np.asarray(value)) for name, value in saved.state.items()})
    return disc.to(device), kind


class Adversary:
    """ZSSRGAN's side of one ZSSR run, across its stages (x2, then x4).

    Passed as ``zssr_super_resolve``'s ``extension``: called with ``(sf, trainer)`` at each stage's
    start, it is that stage's :class:`~zssrgan.train.zssr.StageExtension`. ``loss`` adds the
    adversarial term to every ZSSR step (D frozen); ``after_step`` then updates, one at a time,
    G (``e2e``, D and ZSSR frozen) and D (``serial`` and ``e2e``, G and ZSSR frozen).
    ``kernelgan`` holds D's optimiser and real crops (and G, in ``e2e``); ``fixed`` needs none.
    ``zssr_x{sf}`` gets ``loss_adv`` and ``c`` for every step (beside ZSSR's ``loss_l1``), kept on
    the device until ZSSR reports; every ``zssr.test_every`` steps, as means since the last report,
    ``disc_x{sf}`` gets D's losses and ``kernelgan`` G's (``e2e``, step numbers continuing after
    the warm-up).
    """

    def __init__(self, mode: str, cfg: Config, disc: nn.Module, kernelgan: Optional[KernelGANTrainer] = None,
                 callback: Optional[Callback] = None, kind: DiscriminatorKind = DISCRIMINATORS["kernelgan"]) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown ZSSRGAN mode {mode!r}; choose one of: {', '.join(MODES)}")
        if mode != "fixed" and kernelgan is None:
            raise ValueError(f"ZSSRGAN mode {mode!r} trains D and needs a KernelGAN trainer")
        self.mode, self.cfg, self.disc, self.kernelgan, self.callback = mode, cfg, disc, kernelgan, callback
        self.adversarial_loss = kind.adversarial_loss
        self.iteration = cfg.zssrgan.e2e_warmup_iters if mode == "e2e" else 0  # G's and D's step count
        self.sf = 2
        self.trainer: Optional[ZSSRTrainer] = None
        self.weight: Optional[AdversarialWeight] = None
        self.output: Optional[torch.Tensor] = None  # ZSSR's latest output (detached), D's fake
        self._d, self._g = _Means(), _Means()

    def __call__(self, sf: int, trainer: ZSSRTrainer) -> "Adversary":
        """Start a stage: a fresh c (measured again at the stage's first step), G's kernel for e2e."""
        self.sf, self.trainer = sf, trainer
        self.weight = AdversarialWeight(self.cfg.zssrgan.disc_ratio, self.cfg.zssrgan.c_momentum)
        if self.mode == "e2e":
            self._use_current_kernel()
        return self

    def _due(self, step: int) -> bool:
        return step % self.cfg.zssr.test_every == 0

    def loss(self, output: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """r / (1 - r) * c * L_adv for ZSSR's output, D frozen; gradients reach ZSSR only. Also
        returns this step's ``loss_adv`` and ``c``, on the device."""
        with frozen(self.disc):
            adv = self.adversarial_loss(self.disc(to_disc_range(output)))
        term, c = self.weight(self.trainer.l1, adv)
        self.output = output.detach()
        return term, {"loss_adv": adv.detach(), "c": c}

    def after_step(self, step: int, trainer: ZSSRTrainer) -> dict[str, float]:
        if self.mode == "e2e":
            self.g_step()
        if self.mode != "fixed":
            self.d_step()
        if self._due(step) and self.callback is not None:
            for phase, means in ((f"disc_x{self.sf}", self._d), ("kernelgan", self._g)):
                values = means.read()
                if values:
                    self.callback(phase, self.iteration if phase == "kernelgan" else step, values)
        self.iteration += 1
        return {}

    def g_step(self) -> None:
        """e2e: one KernelGAN generator step (D and ZSSR frozen) while G has iterations left, then
        hand ZSSR G's new kernel."""
        kg, i = self.kernelgan, self.iteration
        if i >= kg.cfg.iters:
            return
        with frozen(self.disc, self.trainer.net):
            self._g.add(kg.g_step(i))
        kg.update_schedule(i)
        self._use_current_kernel()

    def d_step(self) -> None:
        """One D update, G and ZSSR frozen: serial, on (input crop, ZSSR output); e2e, the mean of
        its KernelGAN loss (input crop, G's output) and that pair loss."""
        kg, i = self.kernelgan, self.iteration
        fake = to_disc_range(self.output)
        with frozen(kg.G, self.trainer.net):
            if self.mode == "serial":
                self._d.add(kg.d_step(i, fake))
                return
            kernelgan, pair = kg.d_loss(i), kg.d_loss(i, fake)
            loss = (kernelgan["loss_d"] + pair["loss_d"]) * 0.5
            kg.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            kg.opt_d.step()
        self._d.add({"loss_d": loss, "loss_d_kernelgan": kernelgan["loss_d"], "loss_d_zssr": pair["loss_d"]})

    def _use_current_kernel(self) -> None:
        """ZSSR's kernel for this stage from G's current one: post-processed (and centred) x2, or its
        analytic x4 (the trainer centres kernels for its scale factor). All on the device, as
        ``postprocess_kernel`` would give it: this runs every step."""
        kg = self.kernelgan
        kernel, side = postprocess_kernel_torch(kg.current_kernel().double(), 2, kg.cfg.n_filtering)
        if self.sf == 4:
            kernel, side = analytic_x4_kernel_torch(kernel, side)
        self.trainer.set_kernel(kernel, side)


def make_adversary(lr: np.ndarray, cfg: Config, mode: str, estimate: Optional[KernelEstimate] = None, *,
                   trainer: Optional[Callable[..., Any]] = None, callback: Optional[Callback] = None
                   ) -> tuple[Adversary, dict[int, np.ndarray]]:
    """The :class:`Adversary` of ``mode`` for image ``lr`` and ZSSR's starting kernels.

    ``fixed`` and ``serial`` start from a finished ``estimate`` (its kernels and discriminator);
    ``serial`` trains that discriminator on inside the estimator's ``trainer`` (a factory
    ``(lr, cfg, device, rng)``; without one, a KernelGAN run with the estimate's kernel in G's
    place). ``e2e`` builds the estimator's ``trainer`` from scratch and runs
    ``zssrgan.e2e_warmup_iters`` estimator-only steps first.
    """
    if mode not in MODES:
        raise ValueError(f"unknown ZSSRGAN mode {mode!r}; choose one of: {', '.join(MODES)}")
    if mode != "e2e" and (estimate is None or estimate.discriminator is None):
        raise ValueError(f"ZSSRGAN mode {mode!r} needs a finished kernel estimate with a discriminator "
                         "(zssrgan.estimators.run_estimator with discriminator=True)")
    if mode == "e2e" and trainer is None:
        raise ValueError("ZSSRGAN mode 'e2e' trains the estimator's generator and needs its trainer")
    device = resolve_device(cfg.device)
    rng = np.random.default_rng(cfg.seed)
    if mode == "fixed":
        disc, kind = load_discriminator(estimate.discriminator, device)
        return Adversary(mode, cfg, disc, None, callback, kind), estimate.kernels
    if mode == "serial":  # D trains on from its estimated state, at its own learning rate
        disc, kind = load_discriminator(estimate.discriminator, device)
        run = trainer(lr, cfg, device, rng) if trainer is not None else KernelGANTrainer(
            lr, cfg.kernelgan, device=device, rng=rng, real=cfg.real, fixed_kernel=estimate.kernels[2])
        run.D.load_state_dict(disc.state_dict())
        for group in run.opt_d.param_groups:
            group["lr"] = cfg.zssrgan.lr_d
        return Adversary(mode, cfg, run.D, run, callback, kind), estimate.kernels
    run = trainer(lr, cfg, device, rng)
    run.train(callback, iters=cfg.zssrgan.e2e_warmup_iters)
    kernels = {2: postprocess_kernel(run.current_kernel().double().cpu().numpy(), 2,
                                     run.cfg.n_filtering)}  # then G's kernel at every step
    return Adversary(mode, cfg, run.D, run, callback, DISCRIMINATORS[run.discriminator_arch]), kernels


def zssrgan_super_resolve(lr: np.ndarray, scale: int, cfg: Config, mode: str,
                          estimate: Optional[KernelEstimate] = None, *, trainer: Optional[Callable[..., Any]] = None,
                          callback: Optional[Callback] = None
                          ) -> tuple[np.ndarray, KernelEstimate, dict[str, float]]:
    """Super-resolve ``lr`` by ``scale`` with ZSSR (post-KernelGAN variant, gradually at x4) plus the
    adversarial term of ``mode`` (see :func:`make_adversary`). Returns (SR image, the estimate used,
    or e2e's own final one, seconds per ZSSR phase)."""
    adversary, kernels = make_adversary(lr, cfg, mode, estimate, trainer=trainer, callback=callback)
    sr, timings = zssr_super_resolve(lr, scale, kernels, cfg, cfg.zssr.kernelgan, callback=callback,
                                     extension=adversary)
    return sr, adversary.kernelgan.estimate() if mode == "e2e" else estimate, timings
