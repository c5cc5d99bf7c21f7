"""KernelGAN's fast paths give the results of the plain ones: D's fused training-mode forward
equals successive calls of the module, the production step equals the step through the module
with a per-parameter-list Adam, and K runs in lock-step equal K separate runs, step by step; so
does KernelGAN-FKP's production iteration equal its straightforward one.

Compared in float64: a KernelGAN run's first steps amplify rounding differences by orders of
magnitude (Adam normalises gradients far below its eps), so two float32 runs that differ only in
summation order part ways within ten steps. Each step is compared from the same state: after the
comparison the candidate takes the reference's state (weights, buffers, Adam moments), so every
step is tested on its own over the whole span, schedule changes included.
"""
import copy

import numpy as np
import pytest
import torch

from zssrgan.archs.fkp_arch import gradient_penalty
from zssrgan.archs.kernelgan_arch import Discriminator, composed_kernel_by_delta
from zssrgan.archs.kernelgan_fused import discriminator_train_forward
from zssrgan.auto import _sound_kernelgan
from zssrgan.config import KernelGANConfig, apply_overrides, preset, set_value
from zssrgan.errors import InputError
from zssrgan.losses import adversarial_l1
from zssrgan.train.kernelgan import KernelGANTrainer
from zssrgan.train.kernelgan_fkp import _VALUE_NAMES as _FKP_VALUES, FKPTrainer
from zssrgan.train.kernelgan_lockstep import LockstepKernelGAN, train_lockstep
from zssrgan.train.zssrgan import frozen

CPU = torch.device("cpu")
# a short run whose schedule changes within the test: the bicubic test passes at once (weights
# decay every 2 steps, the late constraints switch on), and the learning rate drops at 5, 10, 15
CFG = KernelGANConfig(iters=20, n_crop_positions=20, bicubic_threshold=2.0, lambda_update_fraction=0.1)


@pytest.fixture
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the trainers compute in the default dtype
    yield
    torch.set_default_dtype(previous)


def _image(seed, shape=(86, 90)):
    return np.random.default_rng(seed).random((*shape, 3)).astype(np.float32)


def _double(trainer):
    trainer.G.double()
    trainer.D.double()
    for name in ("image", "image_batch", "bicubic_kernel", "bicubic_targets", "mask"):
        setattr(trainer, name, getattr(trainer, name).double())
    return trainer


def _trainer(image, seed, **overrides):
    cfg = KernelGANConfig(**{**CFG.__dict__, **overrides})
    return _double(KernelGANTrainer(image, cfg, device=CPU, rng=np.random.default_rng(seed)))


def _module_step_trainer(image, seed):
    """The production step as it was: D through the module, Adam over parameter lists (foreach)."""
    trainer = _trainer(image, seed, fast_discriminator=False)
    betas = (CFG.beta1, 0.999)
    trainer.opt_g = torch.optim.Adam(trainer.G.parameters(), lr=CFG.lr_g, betas=betas, foreach=True)
    trainer.opt_d = torch.optim.Adam(trainer.D.parameters(), lr=CFG.lr_d, betas=betas, foreach=True)
    return trainer


def _close(actual, expected, what):
    # absolute 1e-9: the biases cancelled by a BatchNorm drift by rounding noise in the module (see
    # archs.kernelgan_fused), about 1e-12 per step in float64
    torch.testing.assert_close(actual, expected, rtol=1e-7, atol=1e-9, msg=what)


def _copy_adam(source_opt, source_param, target_opt, target_param, index=None):
    state = source_opt.state.get(source_param)
    if state and target_param in target_opt.state:
        for key, value in state.items():
            target = target_opt.state[target_param][key]
            (target if index is None or key == "step" else target[index]).copy_(value)


def test_fast_discriminator_equals_successive_calls_of_the_module():
    torch.manual_seed(0)
    module = Discriminator().double()
    fast = copy.deepcopy(module)
    real, fake = torch.rand(2, 2, 3, 26, 26, dtype=torch.double).unbind(0)
    fake_module, fake_fast = fake.clone().requires_grad_(), fake.clone().requires_grad_()
    expected = [module(real), module(fake_module)]  # two calls: two power iterations, two BN batches
    ((adversarial_l1(expected[0], True) + adversarial_l1(expected[1], False)) / 2).backward()
    maps = discriminator_train_forward(fast, torch.cat([real, fake_fast]), groups=2)
    ((adversarial_l1(maps[0], True) + adversarial_l1(maps[1], False)) / 2).backward()
    _close(maps, torch.stack(expected), "maps")
    _close(fake_fast.grad, fake_module.grad, "input gradient")
    cancelled = {f"{name}.bias" for name in module.conv_names[:-1]}  # followed by a BatchNorm
    for (name, p_module), p_fast in zip(module.named_parameters(), fast.parameters()):
        if name in cancelled:  # exactly zero in exact arithmetic; the module's is rounding noise
            assert p_fast.grad is None and p_module.grad.abs().max() < 1e-12 * p_module.grad.numel()
        else:
            _close(p_fast.grad, p_module.grad, name)
    for (name, b_module), b_fast in zip(module.named_buffers(), fast.buffers()):
        _close(b_fast.double(), b_module.double(), name)

    # three independent discriminators, stacked, each fed its own batches
    modules = [Discriminator().double() for _ in range(3)]
    params, buffers = torch.func.stack_module_state(modules)
    x = torch.rand(3, 2, 3, 26, 26, dtype=torch.double)
    maps = discriminator_train_forward(modules[0], x, groups=2, state={**params, **buffers})
    for k, disc in enumerate(modules):
        _close(maps[k], torch.stack([disc(x[k, :1]), disc(x[k, 1:])]), f"run {k}")
        for name, value in disc.named_buffers():
            _close(buffers[name][k].double(), value.double(), f"run {k} {name}")


def test_the_discriminator_in_gs_step_computes_no_gradient_for_its_weights():
    """G's step needs D's gradient w.r.t. its input only: D's weights get none, not even when the
    backward is not restricted to G's parameters (a view of a parameter made under no_grad still
    requires grad; the fast forward cuts them off)."""
    torch.manual_seed(0)
    module = Discriminator().double()
    fast = copy.deepcopy(module)
    fake = torch.rand(1, 3, 26, 26, dtype=torch.double)
    fake_module, fake_fast = fake.clone().requires_grad_(), fake.clone().requires_grad_()
    adversarial_l1(module(fake_module), True).backward(inputs=[fake_module])
    adversarial_l1(discriminator_train_forward(fast, fake_fast, weight_grads=False), True).backward()
    _close(fake_fast.grad, fake_module.grad, "input gradient")
    assert all(p.grad is None for p in fast.parameters())


def test_production_step_equals_the_module_step_step_by_step():
    image = _image(0)
    fast, reference = _trainer(image, 0), _module_step_trainer(image, 0)
    for i in range(CFG.iters):
        got = {**fast.g_step(i), **fast.d_step(i)}
        expected = {**reference.g_step(i), **reference.d_step(i)}
        fast.update_schedule(i)
        reference.update_schedule(i)
        for name, value in expected.items():
            _close(got[name], value, f"step {i} {name}")
        mine = {**fast.G.state_dict(), **fast.D.state_dict()}
        for name, value in [*reference.G.state_dict().items(), *reference.D.state_dict().items()]:
            _close(mine[name].double(), value.double(), f"step {i} {name}")
        assert fast.lambdas == reference.lambdas and fast.opt_g.param_groups[0]["lr"] == reference.opt_g.param_groups[0]["lr"]
        fast.G.load_state_dict(reference.G.state_dict())
        fast.D.load_state_dict(reference.D.state_dict())
        for opt, ref_opt, module, ref_module in ((fast.opt_g, reference.opt_g, fast.G, reference.G),
                                                 (fast.opt_d, reference.opt_d, fast.D, reference.D)):
            for p, ref_p in zip(module.parameters(), ref_module.parameters()):
                _copy_adam(ref_opt, ref_p, opt, p)
    assert fast.similar_to_bicubic and fast.lambdas["sparse"] == CFG.lambda_sparse_late


def test_the_kernel_shared_by_d_and_g_steps_is_always_gs_current_one():
    trainer = _trainer(_image(0), 0)
    trainer.g_step(0)
    with frozen(trainer.G):  # a joint loop's D step composes G's new kernel without a graph
        trainer.d_step(0)
    before = [p.detach().clone() for p in trainer.G.parameters()]
    trainer.g_step(1)
    assert all(not torch.equal(old, new) for old, new in zip(before, trainer.G.parameters())), "G got no gradient"
    trainer.d_step(2)
    trainer.G.load_state_dict(_trainer(_image(1), 1).G.state_dict())  # other weights, in place
    _close(trainer.generate(trainer.g_input(3)[0])[0], composed_kernel_by_delta(trainer.G), "kernel after loading")


def test_lockstep_runs_equal_separate_runs_step_by_step():
    # two restarts on one image and a run on another image of another size
    runs = [(_image(0), 0), (_image(0), 1), (_image(1, (96, 86)), 2)]
    separate = [_trainer(image, seed) for image, seed in runs]
    group = LockstepKernelGAN([_trainer(image, seed) for image, seed in runs])
    for trainers in (separate, group.trainers):  # one run with other loss weights: later in its schedule
        trainers[2].lambdas.update(bicubic=0.15, boundaries=0.0)
    names = ["loss_g", "loss_g_total", "loss_bicubic", "loss_sum2one", "loss_boundaries", "loss_centralized",
             "loss_sparse", "loss_d", "loss_d_real", "loss_d_fake"]
    weights_differed = False
    for i in range(CFG.iters):
        got = torch.cat([group.g_step(i), group.d_step(i)], 1)
        group.update_schedule(i)
        for k, run in enumerate(separate):
            expected = {**run.g_step(i), **run.d_step(i)}
            run.update_schedule(i)
            for n, name in enumerate(names):
                _close(got[k, n], expected[name], f"step {i} run {k} {name}")
            for n, layer in enumerate(run.G.layers):
                _close(group.g_weights[n][k], layer.weight, f"step {i} run {k} G layer {n}")
            for name, value in run.D.state_dict().items():
                _close(group.d_state[name][k].double(), value.double(), f"step {i} run {k} {name}")
            assert group.trainers[k].lambdas == run.lambdas
        weights_differed |= len({tuple(t.lambdas.values()) for t in group.trainers}) > 1
        with torch.no_grad():  # the next step from the separate runs' state
            for k, run in enumerate(separate):
                for n, layer in enumerate(run.G.layers):
                    group.g_weights[n][k] = layer.weight
                    _copy_adam(run.opt_g, layer.weight, group.opt_g, group.g_weights[n], k)
                for name, value in [*run.D.named_parameters(), *run.D.named_buffers()]:
                    group.d_state[name][k] = value
                    _copy_adam(run.opt_d, value, group.opt_d, group.d_state[name], k)
    assert weights_differed


def test_train_lockstep_returns_one_estimate_per_run(float64_default):
    cfg = set_value(set_value(preset("quick"), "kernelgan.iters", 6), "kernelgan.n_crop_positions", 6)
    cfg = set_value(cfg, "device", "cpu")
    image = _image(3)
    seen = []
    estimates = train_lockstep(image, cfg, seeds=[0, 0, 5],
                               callbacks=[None, lambda phase, i, values: seen.append((phase, i)), None])
    assert len(estimates) == 3 and seen == [("kernelgan", i) for i in range(6)]
    for estimate in estimates:
        assert estimate.kernels[2].sum() == pytest.approx(1, abs=1e-2) and estimate.raw_kernel.shape == (13, 13)
        assert len(estimate.history["kernelgan"]) == 6 and estimate.timings["kernelgan_train"] > 0
        assert set(estimate.discriminator.state) == set(Discriminator().state_dict())
    np.testing.assert_allclose(estimates[0].raw_kernel, estimates[1].raw_kernel, rtol=1e-4, atol=1e-7)
    assert not np.allclose(estimates[0].raw_kernel, estimates[2].raw_kernel, rtol=1e-2)
    losses = [[row["loss_d"] for row in estimate.history["kernelgan"]] for estimate in estimates]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)  # each run's history is its own
    assert not np.allclose(losses[0], losses[2], rtol=1e-3)
    shared = []
    train_lockstep(image, cfg, seeds=[0, 5], callbacks=[lambda phase, i, values: shared.append(i)] * 2)
    assert shared == [i for i in range(6) for _ in range(2)]  # step by step, each step's runs in order
    with pytest.raises(InputError, match="one seed per image: got 2 images and 3 seeds"):
        train_lockstep([image, image], cfg, seeds=[0, 1, 2])



def test_auto_restarts_in_lockstep_choose_the_sequential_runs_kernel(float64_default):
    # runs so short and fast (3 steps, lr_g 0.01) that some seeds collapse (raw sum under 0.25) and
    # some do not: from every starting seed, both paths must take the same, first sound seed's kernel
    cfg = apply_overrides(preset("quick"), ["device=cpu", "kernelgan.iters=3", "kernelgan.n_crop_positions=8",
                                            "kernelgan.lr_g=0.01", "kernelgan.bicubic_threshold=2.0",
                                            "kernelgan.bicubic_patience=1", "auto.restarts=2"])
    image, restarted = _image(4), 0
    for seed in range(5):
        start = set_value(cfg, "seed", seed)
        sequential, runs = _sound_kernelgan(image, start, None)
        lockstep, group_runs = _sound_kernelgan(image, set_value(start, "auto.restarts_lockstep", True), None)
        assert group_runs == 3 and (lockstep is None) == (sequential is None)
        if sequential is not None:
            np.testing.assert_allclose(lockstep.raw_kernel, sequential.raw_kernel, rtol=1e-6, atol=1e-9)
            restarted += runs > 1
    assert restarted  # the first run collapsed at least once, and the restart was taken alike


def _straightforward_fkp_iteration(trainer, i):
    """KernelGAN-FKP's iteration as written plainly: crops cut and G's output made anew for every
    step, the critic called once per batch, torch's Adam (the trainer's optimisers are replaced)."""
    cfg, size, side = trainer.cfg, trainer.cfg.input_crop, trainer.g_out

    def fake():
        g_input = trainer._crops(trainer.g_corners, i, size).reshape(-1, 1, size, size)
        return trainer.G(g_input)[1].reshape(-1, 3, side, side) * 2 - 1

    for _ in range(cfg.d_steps):
        real = trainer._crops(trainer.d_corners, i, side) * 2 - 1
        with torch.no_grad():
            generated = fake()
        loss_real, loss_fake = -trainer.D(real).mean(), trainer.D(generated).mean()
        penalty = gradient_penalty(trainer.D, real, generated, trainer.noise)
        trainer.opt_d.zero_grad()
        (loss_real + loss_fake + cfg.gp_weight * penalty).backward()
        trainer.opt_d.step()
    for _ in range(cfg.latent_steps):
        loss_g = -trainer.D(fake()).mean()
        trainer.opt_g.zero_grad()
        loss_g.backward()
        trainer.opt_g.step()
        trainer.G.project(cfg.sphere_radius)
    kernel = trainer.current_kernel()
    return {"loss_d_real": loss_real, "loss_d_fake": loss_fake, "gradient_penalty": penalty, "loss_g": loss_g,
            "raw_sum": kernel.sum()}


def _fkp_trainer(image, seed):
    cfg = apply_overrides(preset("quick"), ["fkp.batch=4", "fkp.d_channels=16", "fkp.iters=12"]).fkp
    trainer = FKPTrainer(image, cfg, device=CPU, rng=np.random.default_rng(seed))
    trainer.G.double()
    trainer.D.double()
    trainer.image = trainer.image.double()
    return trainer


def test_fkp_production_iteration_equals_the_straightforward_one_step_by_step():
    image = _image(5, (90, 96))
    fast, reference = _fkp_trainer(image, 0), _fkp_trainer(image, 0)
    betas = (fast.cfg.beta1, 0.999)
    reference.opt_g = torch.optim.Adam([reference.G.latent], lr=fast.cfg.lr_latent, betas=betas, foreach=False)
    reference.opt_d = torch.optim.Adam(reference.D.parameters(), lr=fast.cfg.lr_d, betas=betas, foreach=False)
    names = dict(zip(_FKP_VALUES, range(len(_FKP_VALUES))))
    for i in range(fast.cfg.iters):
        got = fast._iteration(i)
        expected = _straightforward_fkp_iteration(reference, i)
        for name, value in expected.items():
            _close(got[names[name]], value.detach(), f"iteration {i} {name}")
        _close(fast.G.latent, reference.G.latent, f"iteration {i} latent")
        for name, value in reference.D.state_dict().items():
            _close(fast.D.state_dict()[name].double(), value.double(), f"iteration {i} {name}")
        with torch.no_grad():  # the next iteration from the reference's state
            fast.G.latent.copy_(reference.G.latent)
            fast.D.load_state_dict(reference.D.state_dict())
        _copy_adam(reference.opt_g, reference.G.latent, fast.opt_g, fast.G.latent)
        for p, ref_p in zip(fast.D.parameters(), reference.D.parameters()):
            _copy_adam(reference.opt_d, ref_p, fast.opt_d, p)
    assert fast.noise.get_state().equal(reference.noise.get_state())  # as many mixing weights drawn
