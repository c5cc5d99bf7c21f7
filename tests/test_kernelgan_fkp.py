"""KernelGAN-FKP: only the latent trains, G is the prior's kernel applied with stride 2, the critic
is WGAN-GP's, estimates are valid kernels whose width follows the true blur."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zssrgan.archs.fkp_arch import Critic, FlowGenerator, gradient_penalty
from zssrgan.config import apply_overrides, preset
from zssrgan.io import load_image
from zssrgan.kernels import center_of_mass, centred_position, isotropic_gaussian, kernel_shift, kernel_width
from zssrgan.resize import imresize
from zssrgan.train.kernelgan_fkp import FKPTrainer, estimate_kernel_fkp
from zssrgan.train.prior import load_prior

CPU = torch.device("cpu")
CLASSIC = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "classic"
# smaller than `quick`: a few seconds per run on one core
TINY = ["fkp.iters=40", "fkp.batch=4", "fkp.d_channels=16", "device=cpu"]


def test_generator_is_the_priors_kernel_correlated_with_stride_two():
    prior = load_prior()
    latent = torch.randn(121, generator=torch.Generator().manual_seed(0))
    g = FlowGenerator(prior, latent)
    x = torch.rand(6, 1, 64, 64)
    kernel, out = g(x)
    with torch.no_grad():
        expected_kernel = prior.to_kernel(prior.inverse(latent[None])[0])[0]
    torch.testing.assert_close(kernel, expected_kernel)
    assert out.shape == (6, 1, 27, 27)
    torch.testing.assert_close(out[2, 0, 3, 5], (x[2, 0, 6:17, 10:21] * kernel).sum())
    out.sum().backward()
    assert g.latent.grad is not None and all(p.grad is None for p in g.prior.parameters())
    g.train()
    assert not g.prior.training  # the prior's batch norm keeps its trained statistics


def test_projection_puts_the_latent_on_the_sphere():
    g = FlowGenerator(load_prior(), torch.randn(121) * 3)
    g.project(10.0)
    assert g.latent.norm().item() == pytest.approx(10.0, rel=1e-5)


def test_critic_shapes_and_penalty():
    critic = Critic()
    assert critic(torch.zeros(2, 3, 27, 27)).shape == (2, 1, 17, 17)
    real, fake = torch.rand(4, 3, 27, 27), torch.rand(4, 3, 27, 27)
    penalty = gradient_penalty(critic, real, fake)
    assert penalty.ndim == 0 and penalty.item() > 0
    penalty.backward()
    # every weight gets a gradient; the last bias shifts all scores alike, which no gradient sees
    assert [name for name, p in critic.named_parameters() if p.grad is None] == ["body.12.bias"]


def test_steps_train_the_latent_and_the_critic_only():
    image = load_image(CLASSIC / "bird.png")[:120, :120]
    cfg = apply_overrides(preset("quick"), TINY).fkp
    trainer = FKPTrainer(image, cfg, device=CPU, rng=np.random.default_rng(0))
    prior_before = {k: v.clone() for k, v in trainer.G.prior.state_dict().items()}
    latent_before, critic_before = trainer.G.latent.detach().clone(), [p.detach().clone() for p in trainer.D.parameters()]
    trainer.d_step(0)
    assert torch.equal(trainer.G.latent, latent_before)
    assert not all(torch.equal(a, b) for a, b in zip(critic_before, trainer.D.parameters()))
    critic_now = [p.detach().clone() for p in trainer.D.parameters()]
    trainer.g_step(0)
    assert not torch.equal(trainer.G.latent, latent_before)
    assert trainer.G.latent.norm().item() == pytest.approx(cfg.sphere_radius, rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(critic_now, trainer.D.parameters()))
    assert all(torch.equal(v, trainer.G.prior.state_dict()[k]) for k, v in prior_before.items())


def test_a_fake_of_another_size_is_judged_against_real_crops_of_its_size():
    image = load_image(CLASSIC / "bird.png")[:120, :120]
    trainer = FKPTrainer(image, apply_overrides(preset("quick"), TINY).fkp, device=CPU, rng=np.random.default_rng(0))
    for shape in ((1, 3, 48, 40), (1, 3, 300, 64)):  # larger than the (shaved) image: cropped to it
        values = trainer.d_step(0, torch.rand(shape) * 2 - 1)
        assert np.isfinite(float(values["loss_d"]))


def test_estimate_is_a_valid_centred_kernel_with_diagnostics():
    image = load_image(CLASSIC / "bird.png")[:120, :120]
    seen = []
    cfg = apply_overrides(preset("quick"), TINY + ["fkp.iters=3", "fkp.iters_x4=4"])
    estimate = estimate_kernel_fkp(image, 4, cfg, callback=lambda phase, i, values: seen.append((phase, i)))
    assert seen == [("kernelgan_fkp", i) for i in range(4)]  # at x4: fkp.iters_x4 iterations
    for scale, kernel in estimate.kernels.items():
        # centring by cubic spline (kernels.kernel_shift) leaves ringing of a few % of the peak at most
        assert kernel.min() > -0.05 * kernel.max() and kernel.sum() == pytest.approx(1, abs=1e-2)
        np.testing.assert_allclose(center_of_mass(kernel), centred_position(kernel.shape[0], scale), atol=1e-3)
    assert estimate.raw_kernel.shape == (11, 11)
    assert set(estimate.diagnostics) == {"raw_kernel_sum", "kernel_width", "critic_real", "critic_fake"}
    assert estimate.diagnostics["raw_kernel_sum"] == pytest.approx(estimate.raw_kernel.sum())
    assert all(np.isfinite(v) for v in estimate.diagnostics.values())


def test_seeded_runs_repeat_and_seeds_differ():
    image = load_image(CLASSIC / "bird.png")[:120, :120]
    runs = [estimate_kernel_fkp(image, 2, apply_overrides(preset("quick"), TINY + ["fkp.iters=2", f"seed={seed}"]))
            for seed in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0].raw_kernel, runs[1].raw_kernel)
    assert not np.array_equal(runs[0].raw_kernel, runs[2].raw_kernel)


def test_bad_settings_are_refused():
    image = np.zeros((100, 100, 3), np.float32)
    with pytest.raises(ValueError, match="fkp.batch must be at least 1"):
        estimate_kernel_fkp(image, 2, apply_overrides(preset("quick"), ["fkp.batch=0"]))
    with pytest.raises(ValueError, match="scale must be 2 or 4"):
        estimate_kernel_fkp(image, 3, preset("quick"))
