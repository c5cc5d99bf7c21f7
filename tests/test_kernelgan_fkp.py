"""KernelGAN-FKP: only the latent trains, G is the prior's kernel applied with stride 2, the critic
is WGAN-GP's, estimates are valid kernels whose width follows the true blur."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from zssrgan.archs.fkp_arch import Critic, FlowGenerator, gradient_penalty
from zssrgan.config import apply_overrides, preset
from zssrgan.io import load_image
from zssrgan.kernels import center_of_mass, centred_position, kernel_width
from zssrgan.methods import run_method
from zssrgan.progress import History
from zssrgan.train.kernelgan_fkp import FKPTrainer, estimate_kernel_fkp, fkp_trainer
from zssrgan.train.prior import load_prior
from zssrgan.train.zssr import ZSSRTrainer
from zssrgan.train.zssrgan import load_discriminator, make_adversary

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


def test_the_verdict_changes_nothing_in_the_critic():
    image = load_image(CLASSIC / "bird.png")[:120, :120]
    trainer = FKPTrainer(image, apply_overrides(preset("quick"), TINY).fkp, device=CPU, rng=np.random.default_rng(0))
    trainer.d_step(0)
    before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    eval_scores, batch_scores = trainer.verdict(), trainer.verdict(batch_statistics=True)
    assert eval_scores != batch_scores and trainer.D.training
    assert all(torch.equal(v, trainer.D.state_dict()[k]) for k, v in before.items())


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
    assert set(estimate.diagnostics) == {"raw_sum", "width", "d_real", "d_fake", "d_real_train", "d_fake_train"}
    assert estimate.diagnostics["raw_sum"] == pytest.approx(estimate.raw_kernel.sum())
    assert estimate.diagnostics["width"] == pytest.approx(kernel_width(estimate.kernels[2]))
    assert all(np.isfinite(v) for v in estimate.diagnostics.values())
    assert estimate.estimator == "kernelgan-fkp" and estimate.discriminator.arch == "fkp-critic"
    disc, kind = load_discriminator(estimate.discriminator, CPU)  # rebuilt from plain data
    assert isinstance(disc, Critic) and kind.adversarial_loss(torch.ones(1, 1, 3, 3)).item() == -1.0


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
    with pytest.raises(ValueError, match="fkp.input_crop must be at least 31 with fkp.d_layers=5, got 30"):
        estimate_kernel_fkp(image, 2, apply_overrides(preset("quick"), ["fkp.input_crop=30"]))
    with pytest.raises(ValueError, match="scale must be 2 or 4"):
        estimate_kernel_fkp(image, 3, preset("quick"))


# ---- every blind method with kernelgan-fkp as its estimator, tiny budgets --------------------------

MODE_TINY = ["estimator=kernelgan-fkp", "fkp.iters=3", "fkp.batch=2", "fkp.input_crop=32", "fkp.shave=0",
             "fkp.d_channels=8", "zssr.iters=6", "zssr.crop=24", "zssr.channels=16", "zssr.test_every=2", "device=cpu"]


@pytest.mark.parametrize("method", ["kernelgan-zssr", "zssrgan-fixed", "zssrgan-serial", "zssrgan-e2e"])
def test_every_blind_method_runs_with_kernelgan_fkp(method):
    lr = load_image(CLASSIC / "bird.png")[100:140, 100:140].copy()
    history = History()
    result = run_method(method, lr, 2, apply_overrides(preset("quick"), MODE_TINY), callback=history)
    assert result.sr.shape == (80, 80, 3) and np.all(np.isfinite(result.sr))
    assert result.estimate.estimator == "kernelgan-fkp" and result.estimate.discriminator.arch == "fkp-critic"
    assert result.kernel.sum() == pytest.approx(1, abs=1e-2)
    adversarial = [row for row in history.curves["zssr_x2"] if "loss_adv" in row]
    assert (len(adversarial) > 0) == (method != "kernelgan-zssr")
    assert all(np.isfinite(row["c"]) and row["c"] > 0 for row in adversarial)


def test_e2e_steps_the_latent_and_zssr_follows_its_kernel():
    lr = load_image(CLASSIC / "bird.png")[100:140, 100:140].copy()
    cfg = apply_overrides(preset("quick"), MODE_TINY)
    adversary, kernels = make_adversary(lr, cfg, "e2e", trainer=fkp_trainer)
    zssr = ZSSRTrainer(lr, 2, kernels[2], cfg.zssr, cfg.zssr.kernelgan, device=CPU, rng=np.random.default_rng(0))
    adversary(2, zssr)
    zssr.step(adversary.loss)
    kernel, latent = zssr.kernel.clone(), adversary.kernelgan.G.latent.detach().clone()
    critic = {k: v.clone() for k, v in adversary.disc.state_dict().items()}
    adversary.g_step()
    assert not torch.equal(adversary.kernelgan.G.latent, latent) and not torch.equal(zssr.kernel, kernel)
    assert all(torch.equal(v, adversary.disc.state_dict()[k]) for k, v in critic.items())
    adversary.d_step()
    assert not all(torch.equal(v, adversary.disc.state_dict()[k]) for k, v in critic.items())


def test_kernel_command_sets_the_chosen_estimators_iterations(tmp_path, capsys):
    from PIL import Image

    from zssrgan.cli import main

    image = tmp_path / "lr.png"
    Image.fromarray((load_image(CLASSIC / "bird.png")[:100, :100] * 255).astype(np.uint8)).save(image)
    out = tmp_path / "k.npy"
    assert main(["kernel", str(image), "--scale", "4", "--out", str(out), "--estimator", "kernelgan-fkp",
                 "--iters", "2", "--preset", "quick", "--set", "fkp.batch=2", "--device", "cpu"]) == 0
    assert "kernelgan-fkp took" in capsys.readouterr().out
    assert np.load(out, allow_pickle=False).sum() == pytest.approx(1, abs=1e-2)
    assert main(["kernel", str(image), "--out", str(out), "--estimator", "cross-scale", "--iters", "2"]) == 2
    assert "the cross-scale estimator does not train" in capsys.readouterr().err
