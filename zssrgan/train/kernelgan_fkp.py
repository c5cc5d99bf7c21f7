"""KernelGAN-FKP (Liang et al., CVPR 2021): KernelGAN whose generator is a frozen kernel prior.

G correlates each colour channel of a 64x64 crop with the prior's kernel for a latent vector and
keeps every 2nd pixel; a small critic learns, WGAN-GP style, to score the image's own 27x27 crops
above G's outputs; the latent (Adam, put back on a sphere after each step) learns to raise G's
score. No kernel regulariser: the prior only produces plausible kernels. Each iteration makes
``d_steps`` critic steps, then ``latent_steps`` latent steps, on one batch of crops.

Differences from the published code, each a fix:
- every latent step recomputes G's output from the current latent; the published steps reused the
  output of the last critic step, so its three latent steps applied one gradient three times;
- the estimate is the kernel of the final latent (the published one predated the last latent steps);
- the initial latent comes from the run's seed (the published code reseeded with 1 for every image).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..archs.fkp_arch import Critic, FlowGenerator, gradient_penalty
from ..config import Config, ConfigError, FKPConfig, preset
from ..device import at_most_threads, resolve_device
from ..kernels import kernel_width, kernel_width_torch, postprocess_kernel, with_x4
from ..progress import Callback, History, Timings
from ..results import DiscriminatorState, KernelEstimate
from .crops import sample_crops
from .kernelgan import SCALE, check_scale, one_batch, prepare_image, train_and_estimate
from .lean_adam import LeanAdam
from .prior import load_prior

PHASE = "kernelgan_fkp"
REPORT_EVERY = 50  # iterations whose values travel to the host (and the callback) in one transfer
# per iteration: the last critic and latent step's losses, and the kernel the latent now gives
_VALUE_NAMES = ("loss_d", "loss_d_real", "loss_d_fake", "gradient_penalty", "loss_g", "raw_sum", "width")


class FKPTrainer:
    """One KernelGAN-FKP run, step by step, with KernelGANTrainer's interface: ``d_step(i)`` and
    ``g_step(i)`` (a latent step) on iteration ``i``'s crops, ``train``, ``estimate``; ``G``
    (the latent and the frozen prior), ``D`` (the critic), ``opt_d``, ``cfg``.

    Images: G works on [0, 1] crops (as published: a kernel that does not sum to 1 changes the
    brightness, not the offset); the critic sees [-1, 1].
    """

    discriminator_arch = "fkp-critic"  # the critic's row in zssrgan.train.zssrgan.DISCRIMINATORS

    def __init__(self, image: np.ndarray, cfg: FKPConfig, *, device: torch.device, rng: np.random.Generator,
                 real: bool = False, iters: Optional[int] = None) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.iters = cfg.iters if iters is None else iters  # what ``train`` runs by default
        prior = load_prior(cfg.prior or None, SCALE)
        image = prepare_image(image, cfg, real)
        seed = int(rng.integers(2**62))
        with torch.random.fork_rng(devices=[]):  # drawn on the CPU: the same start on every device
            torch.manual_seed(seed)
            generator = FlowGenerator(prior, torch.randn(prior.kernel_size ** 2))
            critic = Critic(cfg.d_channels, cfg.d_layers)
        self.G, self.D = generator.to(self.device), critic.to(self.device)
        self.g_out = (cfg.input_crop - self.G.kernel_size) // SCALE + 1  # 27: G's output = the critic's crop
        if self.g_out <= self.D.shave:  # the critic's map of it must have a pixel
            raise ConfigError(f"fkp.input_crop must be at least {self.G.kernel_size + SCALE * self.D.shave} with "
                              f"fkp.d_layers={cfg.d_layers}, got {cfg.input_crop}")
        self.noise = torch.Generator(device=self.device).manual_seed(seed + 1)  # the penalty's mixing weights

        n = self.iters * cfg.batch  # one fresh batch per iteration, as the published data loader gives
        self.g_corners = sample_crops(image, cfg.input_crop, n, rng, downscaled=True).tolist()
        self.d_corners = sample_crops(image, self.g_out, n, rng).tolist()
        self.image = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None]  # (1, 3, H, W) in [0, 1]
        self.opt_g = LeanAdam([self.G.latent], lr=cfg.lr_latent, betas=(cfg.beta1, 0.999))
        self.opt_d = LeanAdam(self.D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
        # the last iteration's crops, and G's output on them for the latent it was made with: an
        # iteration's critic steps share one batch and, the latent unchanged, one fake
        self._crops_of: tuple = (None, None, None)
        self._fake_of: tuple = (None, None, None)
        self.history = History()
        self.timings = Timings()

    # --- data ------------------------------------------------------------------------------------
    def _corners(self, corners: list[list[int]], i: int, n: int) -> list[list[int]]:
        """The first ``n`` of iteration ``i``'s crop corners (``batch`` per iteration, cycling)."""
        return [corners[(i * self.cfg.batch + j) % len(corners)] for j in range(n)]

    def _crops(self, corners: list[list[int]], i: int, size: int) -> torch.Tensor:
        """Iteration ``i``'s batch of (B, 3, size, size) crops in [0, 1]."""
        picked = self._corners(corners, i, self.cfg.batch)
        return one_batch([self.image[:, :, top:top + size, left:left + size] for top, left in picked])

    def _iteration_crops(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Iteration ``i``'s G input and real crops, cut once for all its steps."""
        if self._crops_of[0] != i:
            size = self.cfg.input_crop
            g_input = self._crops(self.g_corners, i, size).reshape(-1, 1, size, size)
            self._crops_of = (i, g_input, self._crops(self.d_corners, i, self.g_out) * 2 - 1)
        return self._crops_of[1:]

    def g_input(self, i: int) -> torch.Tensor:
        """G's (3B, 1, 64, 64) input crops for iteration ``i`` (colour channels as the batch)."""
        return self._iteration_crops(i)[0]

    def real_crop(self, i: int) -> torch.Tensor:
        """The critic's (B, 3, 27, 27) real crops for iteration ``i``, in [-1, 1]."""
        return self._iteration_crops(i)[1]

    def fake(self, i: int) -> torch.Tensor:
        """G's output on iteration ``i``'s crops as the critic's (B, 3, 27, 27) input in [-1, 1],
        differentiable w.r.t. the latent."""
        return self.generate(self.g_input(i))[1].reshape(-1, 3, self.g_out, self.g_out) * 2 - 1

    def _real_like(self, i: int, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real crops the shape of a fake a joint loop passes (ZSSR's output), for the penalty's
        mixtures: the same corners, clamped into the image; a fake larger than the image is cropped."""
        height, width = self.image.shape[2:]
        fake = fake[..., :min(fake.shape[-2], height), :min(fake.shape[-1], width)]
        h, w = fake.shape[-2:]
        crops = [self.image[:, :, min(top, height - h):min(top, height - h) + h, min(left, width - w):min(left, width - w) + w]
                 for top, left in self._corners(self.d_corners, i, fake.shape[0])]
        return one_batch(crops) * 2 - 1, fake

    # --- networks --------------------------------------------------------------------------------
    def generate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """G's kernel and G(x) for a (3B, 1, h, w) batch in [0, 1]."""
        return self.G(x)

    def current_kernel(self) -> torch.Tensor:
        """The prior's 11x11 kernel for the current latent (detached, on the device)."""
        with torch.no_grad():
            return self.G.kernel()

    # --- steps -----------------------------------------------------------------------------------
    def g_step(self, i: int) -> dict[str, torch.Tensor]:
        """One latent step: raise the critic's score of G's output, then back onto the sphere."""
        loss = -self.D(self.fake(i)).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.G.latent])
        self.opt_g.step()
        self.G.project(self.cfg.sphere_radius)
        return {"loss_g": loss.detach()}

    def d_loss(self, i: int, fake: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """The critic's WGAN-GP loss, ``loss_d`` differentiable, the critic not updated: mean score
        of the fakes - mean score of the real crops + ``gp_weight`` x the gradient penalty. By
        default G's output on iteration ``i``'s crops; a joint loop may pass its own (b, 3, h, w)
        fake in [-1, 1]."""
        real = self.real_crop(i)
        if fake is None:
            mix_real = real
            # a latent step ends in G.project, whose in-place ops bump the latent's version (torch's
            # fused Adam step alone would not): the version says when the kept fake is stale
            if self._fake_of[:2] != (i, self.G.latent._version):
                with torch.no_grad():
                    self._fake_of = (i, self.G.latent._version, self.fake(i))
            fake = self._fake_of[2]
        else:
            mix_real, fake = self._real_like(i, fake.detach())
        loss_real = -self.D(real).mean()
        loss_fake = self.D(fake).mean()
        penalty = gradient_penalty(self.D, mix_real, fake, self.noise)
        return {"loss_d": loss_real + loss_fake + self.cfg.gp_weight * penalty, "loss_d_real": loss_real.detach(),
                "loss_d_fake": loss_fake.detach(), "gradient_penalty": penalty.detach()}

    def d_step(self, i: int, fake: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """One critic update on :meth:`d_loss`."""
        values = self.d_loss(i, fake)
        self.opt_d.zero_grad(set_to_none=True)
        values["loss_d"].backward(inputs=list(self.D.parameters()))
        self.opt_d.step()
        return {**values, "loss_d": values["loss_d"].detach()}

    def update_schedule(self, i: int) -> None:
        """Nothing to schedule: KernelGAN-FKP keeps its learning rates and has no regularisers."""

    def _iteration(self, i: int) -> torch.Tensor:
        """``d_steps`` critic steps, then ``latent_steps`` latent steps on iteration ``i``'s crops;
        the last values and the new kernel's raw sum and width as one device vector
        (``_VALUE_NAMES`` order)."""
        for _ in range(self.cfg.d_steps):
            values = self.d_step(i)
        for _ in range(self.cfg.latent_steps):
            values.update(self.g_step(i))
        kernel = self.current_kernel()
        values.update(raw_sum=kernel.sum(), width=kernel_width_torch(kernel))
        return torch.stack([values[name] for name in _VALUE_NAMES])

    def train(self, callback: Optional[Callback] = None, iters: Optional[int] = None) -> None:
        """Run ``iters`` (default: the trainer's) iterations, recording each in ``self.history`` and
        forwarding it to ``callback("kernelgan_fkp", i, values)``; values reach the host in batches."""
        self.history.forward = callback
        with (self.timings.phase("kernelgan_fkp_train"), at_most_threads(self.cfg.cpu_threads, self.device),
              self.history.batches(PHASE, REPORT_EVERY) as add):
            for i in range(self.iters if iters is None else iters):
                add(i, packed=(_VALUE_NAMES, self._iteration(i)))

    @torch.no_grad()
    def verdict(self, batch_statistics: bool = False) -> tuple[float, float]:
        """The critic's mean score on the last iteration's real crops and G's outputs: how far apart
        it still tells them at the end (a Wasserstein critic's scores are unbounded). In eval mode
        (running BatchNorm statistics, as a frozen critic judges ZSSR), or with each batch's own
        statistics, as in training (the running ones left untouched)."""
        i, training = self.iters - 1, self.D.training
        buffers = {name: value.clone() for name, value in self.D.named_buffers()}
        self.D.train(batch_statistics)
        scores = float(self.D(self.real_crop(i)).mean()), float(self.D(self.fake(i)).mean())
        self.D.load_state_dict(buffers, strict=False)
        self.D.train(training)
        return scores

    def discriminator_state(self) -> DiscriminatorState:
        """The critic (parameters and buffers, as NumPy) for reuse on any device."""
        return DiscriminatorState.of(self.discriminator_arch,
                                     {"channels": self.cfg.d_channels, "layers": self.cfg.d_layers}, self.D)

    def estimate(self) -> KernelEstimate:
        """The finished estimate: the final latent's kernel post-processed (``fkp.n_filtering``: by
        default clipped at 0, normalised and centred for x2), its analytic x4 kernel, the raw
        kernel, the critic's state and the diagnostics: ``raw_sum`` (the flow's kernel is not
        normalised; near 1 for kernels like the prior's), ``width``, ``d_real`` and ``d_fake``
        (:meth:`verdict` in eval mode), ``d_real_train`` and ``d_fake_train`` (with batch
        statistics: the scores the training game saw)."""
        with self.timings.phase("kernelgan_fkp_postprocess"):
            raw = self.current_kernel().double().cpu().numpy()
            kernels = with_x4(postprocess_kernel(raw, SCALE, self.cfg.n_filtering))
            (d_real, d_fake), (d_real_train, d_fake_train) = self.verdict(), self.verdict(batch_statistics=True)
            diagnostics = {"raw_sum": float(raw.sum()), "width": kernel_width(kernels[2]), "d_real": d_real,
                           "d_fake": d_fake, "d_real_train": d_real_train, "d_fake_train": d_fake_train}
        return KernelEstimate(kernels=kernels, estimator="kernelgan-fkp", raw_kernel=raw,
                              discriminator=self.discriminator_state(), diagnostics=diagnostics,
                              history=self.history.as_dict(), timings=self.timings.as_dict())


def fkp_trainer(lr: np.ndarray, cfg: Config, device: torch.device, rng: np.random.Generator) -> FKPTrainer:
    """A fresh KernelGAN-FKP run for the ZSSRGAN modes that drive it step by step."""
    return FKPTrainer(lr, cfg.fkp, device=device, rng=rng, real=cfg.real)


def estimate_kernel_fkp(image: np.ndarray, scale: int = 2, cfg: Optional[Config] = None,
                        callback: Optional[Callback] = None) -> KernelEstimate:
    """Estimate ``image``'s x2 kernel with KernelGAN-FKP (``cfg`` defaults to the paper preset), x4
    from it analytically; at x4 ``fkp.iters_x4`` iterations, as the published code."""
    check_scale("KernelGAN-FKP", scale)
    cfg = cfg or preset("paper")
    return train_and_estimate("kernelgan_fkp", lambda: FKPTrainer(
        image, cfg.fkp, device=resolve_device(cfg.device), rng=np.random.default_rng(cfg.seed), real=cfg.real,
        iters=cfg.fkp.iters_x4 if scale == 4 else cfg.fkp.iters), callback)
