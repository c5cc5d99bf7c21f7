"""ZSSRGAN: the adversarial term's normalisation, freezing, and what each mode trains."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from zssrgan.archs.kernelgan_arch import Discriminator
from zssrgan.config import apply_overrides, preset
from zssrgan.io import load_image
from zssrgan.kernels import analytic_x4_kernel, kernel_shift, postprocess_kernel
from zssrgan.progress import History
from zssrgan.train.kernelgan import estimate_kernel, kernelgan_trainer, train_discriminator
from zssrgan.train.zssr import ZSSRTrainer
from zssrgan.train.zssrgan import (MODES, AdversarialWeight, frozen, make_adversary, to_disc_range,
                                   zssrgan_super_resolve)

CLASSIC = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "classic"


def test_first_step_c_is_the_reports_ratio_and_weights_the_term_by_r():
    weight = AdversarialWeight(ratio=0.25, momentum=0.9)
    adv = torch.tensor(0.5, requires_grad=True)
    term, c = weight(torch.tensor(0.02), adv)
    assert c.item() == pytest.approx(0.02 / 0.5)
    assert term.item() == pytest.approx(0.02 / 3)  # r / (1 - r) = 1/3 of L1
    term.backward()
    assert adv.grad.item() == pytest.approx(c.item() / 3)  # c itself is a constant (detached)


def test_running_c_keeps_the_terms_in_ratio_while_l1_falls_and_momentum_one_freezes_it():
    running, seed = AdversarialWeight(0.5, momentum=0.5), AdversarialWeight(0.5, momentum=1.0)
    for l1 in (0.1, 0.05, 0.02, 0.01, 0.005, 0.002) + (0.001,) * 10:
        adv = torch.tensor(0.4)
        term_running, _ = running(torch.tensor(l1), adv)
        term_seed, c_seed = seed(torch.tensor(l1), adv)
    assert c_seed.item() == pytest.approx(0.1 / 0.4)  # frozen at the first step
    assert term_seed.item() / 0.001 == pytest.approx(100.0)  # the frozen c lets L_adv swamp L1
    assert term_running.item() / 0.001 == pytest.approx(1.0, rel=0.05)  # r = 0.5: equal weight


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1])
def test_ratio_outside_open_interval_is_rejected(ratio):
    with pytest.raises(ValueError, match="disc_ratio"):
        AdversarialWeight(ratio)


def test_frozen_discriminator_changes_nothing_but_passes_gradients_to_its_input():
    torch.manual_seed(0)
    disc = Discriminator(channels=8, blocks=2).train()
    before = {k: v.clone() for k, v in disc.state_dict().items()}
    image = torch.rand(1, 3, 20, 20, requires_grad=True)
    with frozen(disc):
        disc(to_disc_range(image)).mean().backward()
    assert all(torch.equal(before[k], v) for k, v in disc.state_dict().items())  # BN stats, SN vectors too
    assert all(p.grad is None for p in disc.parameters())
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert disc.training and all(p.requires_grad for p in disc.parameters())  # restored
    disc(torch.rand(1, 3, 20, 20))  # a training-mode forward does update the buffers
    assert not all(torch.equal(before[k], v) for k, v in disc.state_dict().items())


# ---- the modes, on a tiny image with tiny budgets ------------------------------------------------

TINY = ["kernelgan.iters=20", "kernelgan.n_crop_positions=20", "kernelgan.input_crop=32", "kernelgan.shave=0",
        "kernelgan.d_channels=16", "kernelgan.g_channels=16", "zssr.iters=6", "zssr.crop=24",
        "zssr.channels=16", "zssr.test_every=2", "device=cpu"]




@pytest.fixture(scope="module")
def tiny():
    """A 40x40 LR crop of a real image, a tiny config and a finished (tiny) KernelGAN estimate."""
    lr = load_image(CLASSIC / "bird.png")[100:140, 100:140].copy()
    cfg = apply_overrides(preset("quick"), TINY)
    return lr, cfg, estimate_kernel(lr, cfg=cfg)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(module, state) -> bool:
    """Every parameter AND buffer (BatchNorm statistics, spectral-norm vectors) unchanged."""
    now = module.state_dict()
    return now.keys() == state.keys() and all(torch.equal(now[k], state[k]) for k in state)


def _stage(tiny, mode, callback=None):
    lr, cfg, estimate = tiny
    adversary, kernels = make_adversary(lr, cfg, mode, estimate, trainer=kernelgan_trainer, callback=callback)
    trainer = ZSSRTrainer(lr, 2, kernels[2], cfg.zssr, cfg.zssr.kernelgan, device=torch.device("cpu"),
                          rng=np.random.default_rng(0))
    return adversary(2, trainer), trainer


@pytest.mark.parametrize("mode", MODES)
def test_zssr_step_trains_zssr_only(tiny, mode):
    adversary, trainer = _stage(tiny, mode)
    frozen_parts = [adversary.disc] + ([adversary.kernelgan.G] if adversary.kernelgan else [])
    before = [_state(m) for m in frozen_parts]
    zssr_before = _state(trainer.net)
    trainer.step(adversary.loss)
    assert all(_same(m, s) for m, s in zip(frozen_parts, before))
    assert not _same(trainer.net, zssr_before)
    [(_, values)] = trainer.reported()
    assert values["loss_adv"] > 0 and values["c"] > 0


def test_fixed_mode_never_changes_kernelgans_discriminator(tiny):
    lr, cfg, estimate = tiny
    adversary, trainer = _stage(tiny, "fixed")
    assert adversary.kernelgan is None
    assert all(np.array_equal(v.numpy(), estimate.discriminator.state[k]) for k, v in adversary.disc.state_dict().items())
    before = _state(adversary.disc)
    for step in range(4):
        trainer.step(adversary.loss)
        adversary.after_step(step, trainer)
    assert _same(adversary.disc, before)


def test_serial_mode_trains_d_from_kernelgans_state_against_zssr(tiny):
    lr, cfg, estimate = tiny
    history = History()
    adversary, trainer = _stage(tiny, "serial", history)
    assert all(np.array_equal(v.numpy(), estimate.discriminator.state[k]) for k, v in adversary.disc.state_dict().items())
    assert adversary.kernelgan.opt_d.param_groups[0]["lr"] == cfg.zssrgan.lr_d
    trainer.step(adversary.loss)
    disc, g, net = _state(adversary.disc), _state(adversary.kernelgan.G), _state(trainer.net)
    adversary.after_step(0, trainer)
    assert not _same(adversary.disc, disc)
    assert _same(adversary.kernelgan.G, g) and _same(trainer.net, net)
    assert set(history.curves) == {"disc_x2"} and history.curves["disc_x2"][0]["loss_d"] > 0


def test_e2e_updates_g_then_d_one_at_a_time_and_zssr_follows_gs_kernel(tiny):
    history = History()
    adversary, trainer = _stage(tiny, "e2e", history)
    kg = adversary.kernelgan
    assert adversary.disc is kg.D
    trainer.step(adversary.loss)
    kernel = trainer.kernel.clone()
    g, d, net = _state(kg.G), _state(kg.D), _state(trainer.net)
    adversary.g_step()
    assert not _same(kg.G, g) and _same(kg.D, d) and _same(trainer.net, net)
    assert not torch.equal(trainer.kernel, kernel)  # ZSSR's next step uses G's new kernel
    g = _state(kg.G)
    adversary.d_step()
    assert not _same(kg.D, d) and _same(kg.G, g) and _same(trainer.net, net)
    assert set(adversary._d.read()) == {"loss_d", "loss_d_kernelgan", "loss_d_zssr"}


def _numpy_stage_kernel(adversary, sf):
    """What the e2e refresh gave ZSSR before it ran on the device: G's kernel through NumPy."""
    kg = adversary.kernelgan
    k2 = postprocess_kernel(kg.current_kernel().double().numpy(), 2, kg.cfg.n_filtering)
    return k2 if sf == 2 else analytic_x4_kernel(k2, crop=True)


@pytest.mark.parametrize("sf", [2, 4])
def test_e2e_hands_zssr_gs_kernel_as_the_numpy_path_did(tiny, sf):
    lr, cfg, _ = tiny
    adversary, _ = _stage(tiny, "e2e")
    kg = adversary.kernelgan
    with frozen(adversary.disc):
        kg.g_step(0)  # a kernel G has trained a step
    cpu = torch.device("cpu")
    on_device = ZSSRTrainer(lr, sf, None, cfg.zssr, cfg.zssr.kernelgan, device=cpu, rng=np.random.default_rng(0))
    adversary(sf, on_device)
    numpy_kernel = _numpy_stage_kernel(adversary, sf)
    on_host = ZSSRTrainer(lr, sf, numpy_kernel, cfg.zssr, cfg.zssr.kernelgan, device=cpu, rng=np.random.default_rng(0))
    expected = kernel_shift(numpy_kernel, sf)
    pad = (on_device.kernel.shape[0] - expected.shape[0]) // 2
    np.testing.assert_allclose(on_device.kernel.numpy(), np.pad(expected, pad), rtol=0, atol=1e-8)
    father, _ = on_host._father()
    torch.testing.assert_close(on_device.degrade(father), on_host.degrade(father), rtol=0, atol=1e-6)


def test_e2e_kernel_refresh_never_reads_the_device(tiny):
    """G and ZSSR's kernel on the meta device, whose tensors hold no data: any host read in the
    refresh (.item(), float(), bool(), .cpu(), .numpy(), a tensor as a Python index) raises."""
    adversary, trainer = _stage(tiny, "e2e")
    adversary.kernelgan.G.to("meta")
    trainer.device = torch.device("meta")
    for sf, side in ((2, 35), (4, 63)):
        adversary.sf = trainer.sf = sf
        adversary._use_current_kernel()
        assert trainer.kernel.is_meta and trainer.kernel.shape == (side, side)


def test_e2e_runs_end_to_end_and_is_deterministic(tiny):
    lr, cfg, _ = tiny
    first, estimate, _ = zssrgan_super_resolve(lr, 2, cfg, "e2e", trainer=kernelgan_trainer)
    again, estimate_again, _ = zssrgan_super_resolve(lr, 2, cfg, "e2e", trainer=kernelgan_trainer)
    assert first.shape == (80, 80, 3) and np.array_equal(first, again)
    assert all(np.array_equal(estimate.kernels[sf], estimate_again.kernels[sf]) for sf in (2, 4))


def test_first_reported_c_is_l1_over_l_adv_of_the_first_step(tiny):
    adversary, trainer = _stage(tiny, "fixed")
    trainer.step(adversary.loss)
    [(_, values)] = trainer.reported()
    assert values["c"] == pytest.approx(values["loss_l1"] / values["loss_adv"], rel=1e-5)


@pytest.mark.parametrize("mode", ["serial", "e2e"])
def test_x4_runs_gradually_with_the_adversarial_term_at_each_stage(tiny, mode):
    lr, cfg, estimate = tiny
    history = History()
    sr, used, timings = zssrgan_super_resolve(lr, 4, cfg, mode, estimate, trainer=kernelgan_trainer,
                                              callback=history)
    assert sr.shape == (160, 160, 3) and sr.dtype == np.float32 and 0 <= sr.min() and sr.max() <= 1
    for sf in (2, 4):
        rows = history.curves[f"zssr_x{sf}"]  # both losses of every step, for the loss curves
        assert [r["step"] for r in rows] == list(range(cfg.zssr.iters))
        assert all(r["c"] > 0 and r["loss_adv"] > 0 and r["loss_l1"] > 0 for r in rows)
        assert history.curves[f"disc_x{sf}"]
    assert set(timings) == {"zssr_x2_train", "zssr_x2_infer", "zssr_x4_train", "zssr_x4_infer"}
    if mode == "e2e":
        assert used is not estimate and set(used.kernels) == {2, 4}
        assert history.curves["kernelgan"]  # G's own losses, reported from inside the loop
    else:
        assert used is estimate


def test_fixed_and_serial_need_an_estimate(tiny):
    lr, cfg, _ = tiny
    with pytest.raises(ValueError, match="needs a finished kernel estimate with a discriminator"):
        make_adversary(lr, cfg, "fixed")
    with pytest.raises(ValueError, match="needs its trainer"):
        make_adversary(lr, cfg, "e2e")
    with pytest.raises(ValueError, match="unknown ZSSRGAN mode"):
        make_adversary(lr, cfg, "parallel")


def test_a_discriminator_trained_against_a_fixed_kernel_serves_fixed_and_serial(tiny):
    """For an estimator that trains no discriminator: KernelGAN's D, trained against the kernel."""
    lr, cfg, estimate = tiny
    history = History()
    saved = train_discriminator(lr, estimate.kernels[2], cfg, history)
    assert saved.arch == "kernelgan" and [row["step"] for row in history.curves["discriminator"]] == list(range(20))
    without_g = type(estimate)(estimate.kernels, "cross-scale", discriminator=saved)
    for mode in ("fixed", "serial"):  # serial: no estimator trainer, KernelGAN's with the kernel in G's place
        adversary, kernels = make_adversary(lr, cfg, mode, without_g)
        assert kernels is without_g.kernels
        assert all(np.array_equal(v.numpy(), saved.state[k]) for k, v in adversary.disc.state_dict().items())
    assert adversary.kernelgan.fixed_kernel is not None
