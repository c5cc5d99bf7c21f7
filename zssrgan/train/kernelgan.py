"""KernelGAN training (docs/algorithms.md, KernelGAN): an image-specific GAN whose linear generator learns
the image's x2 downscaling kernel.

Faithful to the published schedule, fast by construction: crops are drawn up front and sliced on
the device, G trains through its composed 13x13 kernel (same outputs and gradients as the deep
linear network), D's real and fake batch go through one pass of its fast training-mode forward
(same results as two calls of the module, see ``archs.kernelgan_fused``), the bicubic targets of
all crops come from one convolution of the whole image, the optimisers are fused, and losses stay
on the device until a batch of steps is reported.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import torch

from ..archs.kernelgan_arch import (D_RECEPTIVE_FIELD, Discriminator, Generator, compose_weights, composed_kernel,
                                    generate)
from ..archs.kernelgan_fused import discriminator_train_forward
from ..config import Config, ConfigError, KernelGANConfig, preset
from ..device import at_most_threads, keep_freed_memory, resolve_device
from ..errors import InputError
from ..kernels import kernel_width, postprocess_kernel, with_x4
from ..losses import (BICUBIC_X2, adversarial_l1, bicubic_downscale, bicubic_loss, boundaries_loss,
                      boundaries_mask, centralized_loss, sparsity_loss, sum_to_one_loss)
from ..progress import Callback, History, Timings
from ..results import DiscriminatorState, KernelEstimate
from .crops import sample_crops
from .lean_adam import LeanAdam

SCALE = 2  # KernelGAN always learns the x2 kernel; x4 is derived analytically
REPORT_EVERY = 100  # steps whose values travel to the host (and the callback) in one transfer
_LOSS_NAMES = ("loss_g", "loss_g_total", "loss_bicubic", "loss_sum2one", "loss_boundaries",
               "loss_centralized", "loss_sparse", "loss_d", "loss_d_real", "loss_d_fake")


def prepare_image(image: np.ndarray, cfg: KernelGANConfig, real: bool) -> np.ndarray:
    """Validate an HxWx3 [0, 1] image, shave ``cfg.shave`` px (not for real photos) and crop to even sides."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"KernelGAN needs an HxWx3 RGB image, got an array of shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating) or not np.all(np.isfinite(image)):
        raise ValueError("KernelGAN needs a finite floating-point image in [0, 1] (see zssrgan.io.load_image)")
    shave = 0 if real else cfg.shave
    minimum = cfg.input_crop + 2 * shave
    if min(image.shape[:2]) < minimum:
        raise InputError(
            f"image of {image.shape[0]}x{image.shape[1]} px is too small for KernelGAN: it needs at least "
            f"{minimum}x{minimum} px ({cfg.input_crop}px crops"
            + (f" after shaving {shave} px per side)" if shave else ")")
        )
    if shave:
        image = image[shave:-shave, shave:-shave]
    return np.ascontiguousarray(image[: image.shape[0] // SCALE * SCALE, : image.shape[1] // SCALE * SCALE],
                                dtype=np.float32)


def one_batch(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Batches concatenated (one as it is: no copy)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


class SharedKernel:
    """G's composed kernel, composed once per G update: a step's D step (which needs no gradient)
    and the next G step share it. The G step consumes it (its backward frees the graph, and its
    optimiser step, torch's fused Adam, changes the weights without bumping their in-place
    versions); in between, the weights' versions, storage and ``requires_grad`` say when a kept
    kernel is stale (a loaded state, a dtype or device change, G frozen by a joint loop). Code that
    updates G otherwise must step through ``g_step``."""

    def __init__(self, weights: Callable[[], list[torch.Tensor]]) -> None:
        self.weights = weights
        self._key: tuple = ()
        self._kernel: Optional[torch.Tensor] = None

    def __call__(self, consume: bool = False) -> torch.Tensor:
        """The current kernel, differentiable w.r.t. the weights; ``consume``: forget it (its graph
        is about to be freed by a backward)."""
        weights = self.weights()
        key = tuple((w._version, w.data_ptr(), w.requires_grad) for w in weights)
        if self._kernel is None or key != self._key:
            with torch.enable_grad():
                self._kernel, self._key = compose_weights(weights), key
        kernel = self._kernel
        if consume:
            self._kernel = None
        return kernel


class KernelGANTrainer:
    """One KernelGAN run, step by step: ``step(i)`` = one G step, one D step, one schedule update.

    ``g_step``, ``d_step`` and ``update_schedule`` are public so that a joint training loop
    (ZSSRGAN's semi end-to-end mode) can interleave its own steps. Everything lives on ``device``;
    ``rng`` seeds the crops, the initial weights and the noise.
    """

    discriminator_arch = "kernelgan"  # D's row in zssrgan.train.zssrgan.DISCRIMINATORS

    def __init__(self, image: np.ndarray, cfg: KernelGANConfig, *, device: torch.device,
                 rng: np.random.Generator, real: bool = False, fixed_kernel: Optional[np.ndarray] = None) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # a step frees and reallocates the same activation blocks
        dtype = torch.get_default_dtype()  # float32; float64 where tests compare paths step by step
        image = prepare_image(image, cfg, real)
        seed = int(rng.integers(2**62))
        with torch.random.fork_rng(devices=[]):  # weights are drawn on the CPU: same on every device
            torch.manual_seed(seed)
            generator, discriminator = Generator(cfg.g_channels), Discriminator(cfg.d_channels, cfg.d_blocks)
        self.G, self.D = generator.to(self.device), discriminator.to(self.device)
        self.kernel = SharedKernel(lambda: [layer.weight for layer in self.G.layers])
        self._d_tensors_key: Optional[torch.Tensor] = None  # see _d_tensors
        self.g_out = (cfg.input_crop - self.G.kernel_size) // SCALE + 1  # 26: G's output = D's crop
        if self.g_out <= D_RECEPTIVE_FIELD:  # D's map of it must have more than one pixel (BatchNorm)
            raise ConfigError(f"kernelgan.input_crop must be at least {self.G.kernel_size + SCALE * D_RECEPTIVE_FIELD}"
                              f", got {cfg.input_crop}")
        # a given kernel in G's place (D trained against an estimate that came without one)
        self.fixed_kernel = None if fixed_kernel is None else torch.as_tensor(
            fit_kernel(fixed_kernel, self.G.kernel_size), dtype=dtype, device=self.device)
        self.noise = torch.Generator(device=self.device).manual_seed(seed + 1)

        # crop corners, drawn up front (host ints: slicing needs no device round trip)
        n = cfg.n_crop_positions * cfg.crops_per_step
        self.g_corners = sample_crops(image, cfg.input_crop, n, rng, downscaled=True).tolist()
        self.d_corners = sample_crops(image, self.g_out, n, rng).tolist()
        net = torch.from_numpy(image).to(self.device, dtype).permute(2, 0, 1)[None] * 2.0 - 1.0  # (1, 3, H, W)
        self.image = net
        self.image_batch = net.transpose(0, 1)  # (3, 1, H, W): colour channels as a batch
        # Bicubic targets of every G crop in one pass: the crop's x2 bicubic downscale (padding
        # (8-1)//2, shaved to G's output) starts at crop row 3, an odd image row for an even corner.
        self.bicubic_kernel = torch.tensor(BICUBIC_X2, dtype=dtype, device=self.device)
        self.bicubic_targets = bicubic_downscale(self.image_batch[:, :, 1:, 1:], self.bicubic_kernel)
        self.mask = torch.tensor(boundaries_mask(self.G.kernel_size), dtype=dtype, device=self.device)

        self.opt_g = LeanAdam(self.G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999))
        self.opt_d = LeanAdam(self.D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
        self.lr_milestones = {round(f * cfg.iters) for f in cfg.lr_milestones}
        self.lambda_every = max(1, round(cfg.iters * cfg.lambda_update_fraction))
        self.lambdas = {"bicubic": cfg.lambda_bicubic, "sum2one": cfg.lambda_sum2one,
                        "boundaries": cfg.lambda_boundaries, "centralized": cfg.lambda_centralized,
                        "sparse": cfg.lambda_sparse}
        self._similar_since: Optional[int] = None  # the step at which G became bicubic-like
        self._below_threshold = 0  # consecutive steps under the threshold so far
        self._pending_bicubic: list[tuple[int, torch.Tensor]] = []  # (step, relative loss) on the device
        self._constraints_added = False
        self.history = History()
        self.timings = Timings()

    # --- data ------------------------------------------------------------------------------------
    def _corners(self, corners: list[list[int]], i: int) -> list[list[int]]:
        """The ``crops_per_step`` corners of step ``i`` (cycling through the drawn positions)."""
        n = self.cfg.crops_per_step
        return [corners[(i * n + j) % len(corners)] for j in range(n)]

    def g_input(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """G's (3B, 1, 64, 64) input crops for step ``i`` (B = crops_per_step, colour channels as
        the batch) and their (3B, 1, 26, 26) bicubic targets."""
        size, out = self.cfg.input_crop, self.g_out
        crops, targets = [], []
        for top, left in self._corners(self.g_corners, i):
            crops.append(self.image_batch[:, :, top:top + size, left:left + size])
            row, col = top // 2 + 1, left // 2 + 1
            targets.append(self.bicubic_targets[:, :, row:row + out, col:col + out])
        return one_batch(crops), one_batch(targets)

    def real_crop(self, i: int) -> torch.Tensor:
        """D's (B, 3, 26, 26) real crops for step ``i``, with noise."""
        size = self.g_out
        return self._noisy(one_batch([self.image[:, :, top:top + size, left:left + size]
                                   for top, left in self._corners(self.d_corners, i)]))

    def to_discriminator(self, g_output: torch.Tensor) -> torch.Tensor:
        """G's (3B, 1, h, w) output as D's (B, 3, h, w) input."""
        return g_output.reshape(-1, 3, *g_output.shape[2:])

    def _noisy(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian noise of std ``noise_std`` in [0, 1] units (2x that in the network's [-1, 1]).

        The published code gave real crops this noise but G's outputs half of it (std 1/255 added in
        [-1, 1] units), a difference D could use to tell them apart; both get the same noise here.
        """
        noise = torch.randn(x.shape, generator=self.noise, device=self.device, dtype=x.dtype)
        return x + noise * (2.0 * self.cfg.noise_std)

    # --- networks --------------------------------------------------------------------------------
    def generate(self, x: torch.Tensor, consume: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """G's kernel and G(x) for a (3, 1, h, w) batch: through the kernel, or layer by layer
        (``fast_generator=False``, the literal reference). ``consume``: a backward follows (see
        :class:`SharedKernel`)."""
        if self.fixed_kernel is not None:
            return self.fixed_kernel, generate(x, self.fixed_kernel)
        kernel = self.kernel(consume)
        return kernel, generate(x, kernel) if self.cfg.fast_generator else self.G(x)

    def discriminate(self, batches: list[torch.Tensor], weight_grads: bool = True) -> list[torch.Tensor]:
        """D's maps of ``batches``, as successive calls ``self.D(batch)``; in training mode batches of
        one shape go through one pass of the fast forward (``fast_discriminator``).
        ``weight_grads=False``: only the batches need gradients (G's step)."""
        fast = self.cfg.fast_discriminator and self.D.training and self.D.bn_names
        if not (fast and len({b.shape for b in batches}) == 1):
            return [self.D(batch) for batch in batches]
        maps = discriminator_train_forward(self.D, one_batch(batches), len(batches), self._d_tensors(), weight_grads)
        return list(maps.unbind(0))

    def _d_tensors(self) -> dict[str, torch.Tensor]:
        """``self.D.tensors()``, kept while D's buffers are the same objects (``.to()`` and
        ``.double()`` replace them; training and ``load_state_dict`` update them in place)."""
        buffer = self.D.get_submodule(self.D.bn_names[0]).running_mean
        if self._d_tensors_key is not buffer:
            self._d_tensors_cache, self._d_tensors_key = self.D.tensors(), buffer
        return self._d_tensors_cache

    def current_kernel(self) -> torch.Tensor:
        """G's composed 13x13 kernel now (detached, on the device)."""
        with torch.no_grad():
            return composed_kernel(self.G)

    # --- steps -----------------------------------------------------------------------------------
    def g_step(self, i: int) -> dict[str, torch.Tensor]:
        """One generator update: fool D, stay close to bicubic early, keep the kernel well-formed.
        Returns detached 0-d tensors (no host transfer)."""
        crop, target = self.g_input(i)
        kernel, fake = self.generate(crop, consume=True)
        loss_adv = adversarial_l1(self.discriminate([self.to_discriminator(fake)], weight_grads=False)[0], real=True)
        terms = {"bicubic": bicubic_loss(fake, target), "sum2one": sum_to_one_loss(kernel),
                 "boundaries": boundaries_loss(kernel, self.mask), "centralized": centralized_loss(kernel, SCALE),
                 "sparse": sparsity_loss(kernel)}
        total = loss_adv + sum(self.lambdas[name] * term for name, term in terms.items() if self.lambdas[name])
        self.opt_g.zero_grad(set_to_none=True)
        total.backward(inputs=list(self.G.parameters()))  # D's weight gradients are not needed here
        self.opt_g.step()
        # the schedule's test, relative to the target's energy (``_similar_since``, not the property:
        # that would read the device every step)
        if self._similar_since is None:
            self.record_bicubic(i, (terms["bicubic"] / target.square().mean()).detach())
        return {"loss_g": loss_adv.detach(), "loss_g_total": total.detach(),
                **{f"loss_{name}": term.detach() for name, term in terms.items()}}

    def d_loss(self, i: int, fake: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """D's loss on a real crop and a fake, ``loss_d`` differentiable, D not updated: by default
        G's (just updated) output on step ``i``'s crop; a joint loop may pass its own (1, 3, h, w)
        fake in [-1, 1] (ZSSRGAN's semi end-to-end mode averages two of these in one update)."""
        if fake is None:
            with torch.no_grad():
                fake = self.to_discriminator(self.generate(self.g_input(i)[0])[1])
        real_map, fake_map = self.discriminate([self.real_crop(i), self._noisy(fake.detach())])
        loss_real, loss_fake = adversarial_l1(real_map, real=True), adversarial_l1(fake_map, real=False)
        return {"loss_d": (loss_real + loss_fake) * 0.5, "loss_d_real": loss_real.detach(),
                "loss_d_fake": loss_fake.detach()}

    def d_step(self, i: int, fake: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """One discriminator update on :meth:`d_loss`."""
        values = self.d_loss(i, fake)
        self.opt_d.zero_grad(set_to_none=True)
        values["loss_d"].backward()
        self.opt_d.step()
        return {**values, "loss_d": values["loss_d"].detach()}

    def record_bicubic(self, i: int, relative_loss: torch.Tensor) -> None:
        """Keep step ``i``'s relative bicubic loss on the device until the schedule needs it."""
        self._pending_bicubic.append((i, relative_loss))

    @property
    def similar_to_bicubic(self) -> bool:
        """Whether G has passed the bicubic test (reads the recorded losses, one transfer)."""
        self._resolve_bicubic()
        return self._similar_since is not None

    def _resolve_bicubic(self) -> None:
        """Run the threshold test over the recorded steps in order: ``bicubic_patience`` consecutive
        steps under ``bicubic_threshold`` (step 0 skipped, as published) make G bicubic-like."""
        pending, self._pending_bicubic = self._pending_bicubic, []
        if self._similar_since is not None or not pending:
            return
        values = torch.stack([value for _, value in pending]).tolist()
        for (step, _), value in zip(pending, values):
            if step == 0:
                continue
            self._below_threshold = self._below_threshold + 1 if value < self.cfg.bicubic_threshold else 0
            if self._below_threshold >= self.cfg.bicubic_patience:
                self._similar_since = step
                return

    def update_schedule(self, i: int) -> None:
        """After step ``i``: lr / 10 at the milestones; once the bicubic loss has stayed under the
        threshold for ``bicubic_patience`` steps, decay its weight every ``lambda_every`` steps and,
        when it is small, switch on the centralized and sparsity terms (published order, step 0 skipped).

        The threshold applies to the bicubic loss divided by the mean square of its target. The
        published absolute 0.4 was calibrated on its channel-summing target (see
        ``losses.bicubic_downscale``); against the correct target a generator that outputs nothing
        already scores under 0.4, so the schedule would skip the bicubic phase altogether.

        The published code read the loss on the host every step. The weights only change at
        multiples of ``lambda_every``, so the recorded losses are tested there, in one transfer:
        the schedule is the same step for step, without a device sync per step.
        """
        cfg = self.cfg
        if i == 0:
            return
        if i in self.lr_milestones:
            for opt in (self.opt_g, self.opt_d):
                for group in opt.param_groups:
                    group["lr"] *= cfg.lr_gamma
        # weights change only at multiples of lambda_every, once G is bicubic-like, and (as
        # published) not at the step that passed the test
        if i % self.lambda_every or not self.similar_to_bicubic or self._similar_since >= i:
            return
        if self.lambdas["bicubic"] > cfg.bicubic_floor:
            self.lambdas["bicubic"] = max(self.lambdas["bicubic"] / cfg.bicubic_decay, cfg.bicubic_floor)
            if not self._constraints_added and self.lambdas["bicubic"] < cfg.bicubic_switch:
                self.lambdas["centralized"] = cfg.lambda_centralized_late
                self.lambdas["sparse"] = cfg.lambda_sparse_late
                self._constraints_added = True

    def _settings(self) -> dict[str, float]:
        return {"lr_g": self.opt_g.param_groups[0]["lr"], "lambda_bicubic": self.lambdas["bicubic"],
                "lambda_centralized": self.lambdas["centralized"], "lambda_sparse": self.lambdas["sparse"]}

    def _step_tensors(self, i: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One full step; the losses as one device vector (in ``_LOSS_NAMES`` order) and the settings used."""
        settings = self._settings()
        values = self.g_step(i)
        values.update(self.d_step(i))
        self.update_schedule(i)
        return torch.stack([values[name] for name in _LOSS_NAMES]), settings

    def step(self, i: int) -> dict[str, float]:
        """One G step, one D step and the schedule update; the losses and settings as floats."""
        with at_most_threads(self.cfg.cpu_threads, self.device):
            losses, settings = self._step_tensors(i)
        return {**dict(zip(_LOSS_NAMES, losses.tolist())), **settings}

    def train(self, callback: Optional[Callback] = None, iters: Optional[int] = None) -> None:
        """Run ``iters`` (default ``cfg.iters``) steps, recording every step in ``self.history`` and
        forwarding it to ``callback("kernelgan", i, values)``; values reach the host in batches."""
        self.history.forward = callback
        with (self.timings.phase("kernelgan_train"), at_most_threads(self.cfg.cpu_threads, self.device),
              self.history.batches("kernelgan", REPORT_EVERY) as add):
            for i in range(self.cfg.iters if iters is None else iters):
                losses, settings = self._step_tensors(i)
                add(i, settings, packed=(_LOSS_NAMES, losses))

    def verdict(self, steps: int = 8) -> tuple[float, float]:
        """D's mean output (1 = judged real, 0 = fake) on real crops and on G's output for the
        crops of the first ``steps`` steps, D in eval mode: how well G fools D at the end."""
        real, fake = [], []
        training = self.D.training
        self.D.eval()
        with torch.no_grad():
            for i in range(steps):
                real.append(self.D(self.real_crop(i)).mean())
                fake.append(self.D(self._noisy(self.to_discriminator(self.generate(self.g_input(i)[0])[1]))).mean())
        self.D.train(training)
        return tuple(torch.stack(values).mean().item() for values in (real, fake))

    def discriminator_state(self) -> DiscriminatorState:
        """D (parameters and buffers, as NumPy) for reuse on any device."""
        return DiscriminatorState.of(self.discriminator_arch,
                                     {"channels": self.cfg.d_channels, "blocks": self.cfg.d_blocks}, self.D)

    def estimate(self) -> KernelEstimate:
        """The finished estimate: post-processed x2 kernel, analytic x4 kernel centred for x4, G's raw
        kernel, D's state for reuse, the diagnostics, the recorded history and timings.

        Diagnostics: ``raw_sum`` (G's kernel sums to 1 when G is sound; near 0 when it collapsed),
        ``width`` (:func:`~zssrgan.kernels.kernel_width` of the x2 kernel), ``bicubic_phase_ended``
        and ``late_constraints`` (1 when the schedule passed those phases), ``d_real`` and
        ``d_fake`` (:meth:`verdict`)."""
        with self.timings.phase("kernelgan_postprocess"):
            raw = self.current_kernel().double().cpu().numpy()
            kernels = with_x4(postprocess_kernel(raw, SCALE, self.cfg.n_filtering))
            d_real, d_fake = self.verdict()
            diagnostics = {"raw_sum": float(raw.sum()), "width": kernel_width(kernels[2]),
                           "bicubic_phase_ended": float(self.similar_to_bicubic),
                           "late_constraints": float(self._constraints_added), "d_real": d_real, "d_fake": d_fake}
        return KernelEstimate(kernels=kernels, estimator="kernelgan", raw_kernel=raw,
                              discriminator=self.discriminator_state(), diagnostics=diagnostics,
                              history=self.history.as_dict(), timings=self.timings.as_dict())


def kernelgan_trainer(image: np.ndarray, cfg: Config, device: torch.device,
                      rng: np.random.Generator) -> KernelGANTrainer:
    """A fresh KernelGAN run for the ZSSRGAN modes that drive it step by step."""
    return KernelGANTrainer(image, cfg.kernelgan, device=device, rng=rng, real=cfg.real)


def fit_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """``kernel`` cropped or zero-padded about its centre to ``size`` x ``size``, summing to 1."""
    kernel = np.asarray(kernel, dtype=np.float64)
    pad = (size - kernel.shape[0]) // 2, (size - kernel.shape[1]) // 2
    if min(pad) < 0:
        kernel = kernel[max(-pad[0], 0):kernel.shape[0] - max(-pad[0], 0),
                        max(-pad[1], 0):kernel.shape[1] - max(-pad[1], 0)]
    kernel = np.pad(kernel, [(max(p, 0), size - n - max(p, 0)) for p, n in zip(pad, kernel.shape)])
    return kernel / kernel.sum()


def train_discriminator(image: np.ndarray, kernel: np.ndarray, cfg: Config,
                        callback: Optional[Callback] = None) -> DiscriminatorState:
    """KernelGAN's discriminator trained against a fixed x2 ``kernel`` (``kernelgan.iters`` D steps on
    the published schedule, G's place taken by the kernel): what the ZSSRGAN modes use with an
    estimator that trains no discriminator of its own."""
    trainer = KernelGANTrainer(image, cfg.kernelgan, device=resolve_device(cfg.device),
                               rng=np.random.default_rng(cfg.seed), real=cfg.real, fixed_kernel=kernel)
    names = ("loss_d", "loss_d_real", "loss_d_fake")
    with (at_most_threads(cfg.kernelgan.cpu_threads, trainer.device),
          History(callback).batches("discriminator", REPORT_EVERY) as add):
        for i in range(cfg.kernelgan.iters):
            losses = trainer.d_step(i)
            trainer.update_schedule(i)
            add(i, packed=(names, torch.stack([losses[name] for name in names])))
    return trainer.discriminator_state()


def check_scale(estimator: str, scale: int) -> None:
    """GAN estimators train at x2 and derive x4: the scales a caller may ask them for."""
    if scale not in (2, 4):
        raise InputError(f"{estimator} estimates x2 and x4 kernels; scale must be 2 or 4, got {scale!r}")


def train_and_estimate(phase: str, make_trainer: Callable[[], Any],
                       callback: Optional[Callback] = None) -> KernelEstimate:
    """A GAN estimator's run (KernelGAN's or KernelGAN-FKP's trainer): made, trained and finished,
    with its whole time recorded as ``phase``."""
    timings = Timings()
    with timings.phase(phase):
        trainer = make_trainer()
        trainer.train(callback)
        result = trainer.estimate()
    result.timings.update(timings.as_dict())
    return result


def estimate_kernel(image: np.ndarray, scale: int = 2, cfg: Optional[Config] = None,
                    callback: Optional[Callback] = None) -> KernelEstimate:
    """Estimate ``image``'s downscaling kernel with KernelGAN (``cfg`` defaults to the paper preset).

    ``scale`` (2 or 4) names the kernel the caller needs; both are returned, since KernelGAN always
    trains at x2 and derives x4 analytically.
    """
    check_scale("KernelGAN", scale)
    cfg = cfg or preset("paper")
    return train_and_estimate("kernelgan", lambda: KernelGANTrainer(
        image, cfg.kernelgan, device=resolve_device(cfg.device), rng=np.random.default_rng(cfg.seed), real=cfg.real),
        callback)
