"""ZSSR: network, learning-rate policy, father/son degradation, alignment, stages, extensions."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.io import imread

from zssrgan.archs.zssr_arch import ZSSRNet
from zssrgan.config import Config, ZSSRConfig
from zssrgan.kernels import (KernelError, analytic_x4_kernel, anisotropic_gaussian, kernel_shift,
                             postprocess_kernel_torch)
from zssrgan.losses import gradient_weight_map
from zssrgan.metrics import psnr
from zssrgan.resize import imresize
from zssrgan.train.zssr import LearningRatePolicy, ZSSRTrainer, dihedral, median, undo_dihedral, zssr_super_resolve

CLASSIC = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "classic"
KERNEL = anisotropic_gaussian(11, 3.0, 0.8, 0.6)  # elongated and rotated: misplacing it shows




def ground_truth(name: str = "baby.png", size: int = 96) -> np.ndarray:
    image = imread(CLASSIC / name)[..., :3].astype(np.float32) / 255.0
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top:top + size, left:left + size]


def small_config(**zssr) -> Config:
    cfg = Config(device="cpu")
    cfg.zssr = dataclasses.replace(cfg.zssr, **{"crop": 32, **zssr})
    return cfg


def trainer_for(lr: np.ndarray, cfg: Config, kernel=KERNEL, variant=None, seed: int = 0, **kwargs) -> ZSSRTrainer:
    return ZSSRTrainer(lr, 2, kernel, cfg.zssr, variant or cfg.zssr.kernelgan, device=torch.device("cpu"),
                       rng=np.random.default_rng(seed), **kwargs)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


# ---- network --------------------------------------------------------------------------------

def test_network_keeps_the_shape_learns_a_residual_and_starts_small():
    net = ZSSRNet(channels=64, depth=8)
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8 and all(c.bias is None and c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.body) == 7
    assert convs[1].weight.std().item() == pytest.approx(np.sqrt(0.1 / (64 * 9)), rel=0.05)
    x = torch.rand(2, 3, 21, 17)
    assert net(x).shape == x.shape
    with torch.no_grad():
        convs[-1].weight.zero_()
    assert torch.equal(net(x), x)  # the output is the input plus what the layers add


# ---- learning-rate policy -------------------------------------------------------------------

def run_policy(curve, iters: int = 3000) -> tuple[LearningRatePolicy, int]:
    """Drive the policy as the trainer does, feeding it a synthetic reconstruction-MSE curve."""
    policy = LearningRatePolicy(ZSSRConfig())
    for step in range(iters):
        if step % 50 == 0:
            policy.record(step, curve(step))
        policy.update(step)
        if policy.finished:
            return policy, step
    return policy, iters


def test_policy_divides_the_rate_on_a_plateau_at_the_published_steps_and_stops():
    wiggle = lambda step: 0.01 + 1e-4 * ((step // 50) % 2)  # flat: no significant slope
    policy, stopped = run_policy(wiggle)
    # first check after > 256 steps at (step + 1) % 60 == 0, then 256+ steps after each change
    assert policy.changed_at == [0, 299, 599, 899]
    assert stopped == 899 and policy.lr == pytest.approx(1e-6)


def test_policy_keeps_the_rate_while_the_loss_clearly_falls_even_when_noisy():
    # Falling 1e-4 per step with +-2e-3 noise: the slope's standard error is ~30x smaller than
    # 1.5 x slope, so the rate stays; the residuals' spread (2e-3) would have cut it.
    noisy_fall = lambda step: 1.0 - 1e-4 * step + 2e-3 * (-1) ** (step // 50)
    policy, stopped = run_policy(noisy_fall, iters=1000)
    assert policy.changed_at == [0] and policy.lr == 1e-3 and stopped == 1000
    steps = np.arange(750, 1000, 50)
    (slope, _), cov = np.polyfit(steps, [noisy_fall(s) for s in steps], 1, cov=True)
    assert np.sqrt(cov[0, 0]) < -1.5 * slope < np.std([noisy_fall(s) for s in steps])


def test_trainer_finishes_at_the_iteration_cap_and_reports_every_step_in_batches():
    lr = np.clip(imresize(ground_truth(size=64), 0.5, kernel=KERNEL), 0, 1).astype(np.float32)
    trainer = trainer_for(lr, small_config(iters=7, test_every=3))
    batches = []
    while not trainer.finished:
        trainer.step()
        batches.append(trainer.reported())
    assert trainer.iteration == 7
    # the host reads the device at steps 0, 3 and 6 (the policy's MSE) and at the end: the rows of
    # every step travel then, not one by one
    assert [[step for step, _ in batch] for batch in batches] == [[0], [], [], [1, 2, 3], [], [], [4, 5, 6]]
    rows = [row for batch in batches for row in batch]
    assert all(set(values) == {"lr", "loss_l1"} | ({"rec_mse"} if step % 3 == 0 else set()) for step, values in rows)
    assert all(values["loss_l1"] > 0 for _, values in rows)


# ---- fathers and sons -----------------------------------------------------------------------

@pytest.mark.parametrize("kernel", [KERNEL, None], ids=["kernel", "bicubic"])
def test_son_is_the_father_degraded_by_the_centred_kernel_as_imresize_does(kernel):
    lr = ground_truth(size=64)
    trainer = trainer_for(lr, small_config(), kernel=kernel)
    father, weights = trainer._father()
    assert father.shape == (1, 3, 32, 32) and weights.shape == (1, 1, 32, 32)
    father_np = to_numpy(father)
    expected = imresize(father_np.astype(np.float64), 0.5, kernel=None if kernel is None else kernel_shift(kernel, 2))
    np.testing.assert_allclose(to_numpy(trainer.degrade(father)), np.clip(expected, 0, 1), atol=2e-5)
    # without augmentation the father is a plain crop of the input
    windows = np.lib.stride_tricks.sliding_window_view(lr, (32, 32, 3))[..., 0, :, :, :]
    assert np.any(np.all(np.abs(windows - father_np) < 1e-6, axis=(-3, -2, -1)))


@pytest.mark.parametrize("sf", [2, 4])
def test_a_kernel_tensor_is_centred_and_degrades_as_the_same_kernel_given_as_an_array(sf):
    lr = ground_truth(size=64)
    cfg = small_config()
    on_host = ZSSRTrainer(lr, sf, KERNEL, cfg.zssr, cfg.zssr.kernelgan, device=torch.device("cpu"),
                          rng=np.random.default_rng(0))
    on_device = ZSSRTrainer(lr, sf, None, cfg.zssr, cfg.zssr.kernelgan, device=torch.device("cpu"),
                            rng=np.random.default_rng(0))
    canvas = torch.nn.functional.pad(torch.as_tensor(KERNEL), [3] * 4)  # KERNEL's 11 taps at the centre of 17
    on_device.set_kernel(canvas, torch.tensor(11.0, dtype=torch.float64))
    pad = (on_device.kernel.shape[0] - on_host.kernel.shape[0]) // 2
    np.testing.assert_allclose(on_device.kernel.numpy(), np.pad(on_host.kernel.numpy(), pad), rtol=0, atol=1e-8)
    father, _ = on_host._father()
    torch.testing.assert_close(on_device.degrade(father), on_host.degrade(father), rtol=0, atol=1e-6)
    on_device.check_kernel()  # a valid kernel: nothing to report


def test_an_unusable_kernel_tensor_is_reported_at_the_next_report():
    lr = ground_truth(size=64)
    trainer = trainer_for(lr, small_config(test_every=2))
    trainer.step()
    kernel, side = postprocess_kernel_torch(-torch.ones(13, 13, dtype=torch.float64), 2)  # no positive tap left
    trainer.set_kernel(kernel, side)
    trainer.step()  # step 1: no report, no host read
    with pytest.raises(KernelError, match="not finite or has no positive sum"):
        trainer.step()


def test_kernel_tensors_are_validated_as_used():
    """The check looks at the centred kernel ZSSR degrades with: a side that does not fit the
    canvas (wrong parity) leaves nothing, and is reported; a NumPy kernel takes no side."""
    trainer = trainer_for(ground_truth(size=64), small_config())
    canvas = torch.nn.functional.pad(torch.as_tensor(KERNEL), [3] * 4)  # 17 taps
    trainer.set_kernel(canvas, torch.tensor(12.0, dtype=torch.float64))
    with pytest.raises(KernelError, match="not finite or has no positive sum"):
        trainer.check_kernel()
    with pytest.raises(KernelError, match="side"):
        trainer.set_kernel(KERNEL, torch.tensor(11.0))


def test_original_configuration_augments_fathers_without_losing_them_to_black_borders():
    lr = ground_truth(size=64)
    cfg = small_config()
    trainer = trainer_for(lr, cfg, variant=cfg.zssr.original)
    windows = np.lib.stride_tricks.sliding_window_view(lr, (32, 32, 3))[..., 0, :, :, :]
    plain, black = 0, []
    for _ in range(100):
        father, weights = trainer._father()
        assert weights is None and father.shape == (1, 3, 32, 32)
        assert 0.0 <= father.min() and father.max() <= 1.0
        plain += bool(np.any(np.all(np.abs(windows - to_numpy(father)) < 1e-6, axis=(-3, -2, -1))))
        black.append(float((father == 0).all(dim=1).float().mean()))
    # 5% as is and 1 in 8 of the 45% rotations/flips is a plain crop (~11 of 100; none with odds
    # of 1e-5); most are rotated, flipped or warped
    assert 0 < plain < 50
    assert np.mean(black) < 0.05  # warped crops are drawn inside the scaled image


def test_gradient_weights_favour_edges_and_have_mean_one():
    image = np.zeros((40, 40, 3))
    image[:, 20:] = 1.0  # one vertical edge
    weights = gradient_weight_map(image)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[10:30, 18:22].min() > 5 and weights[10:30, 5:12].max() == 0.0
    assert np.all(weights[:3] == 0) and np.all(weights[:, -3:] == 0)
    np.testing.assert_allclose(gradient_weight_map(np.full((20, 20, 3), 0.5)), 1.0)  # flat: uniform


def test_geometric_ensemble_helpers_invert_and_median_matches_numpy():
    x = torch.rand(1, 3, 5, 7)
    shapes = {dihedral(x, k).shape for k in range(8)}
    assert shapes == {(1, 3, 5, 7), (1, 3, 7, 5)}
    assert all(torch.equal(undo_dihedral(dihedral(x, k), k), x) for k in range(8))
    assert len({dihedral(x, k).flatten().tolist().__str__() for k in range(8)}) == 8
    outputs = [torch.rand(1, 3, 4, 4) for _ in range(8)]
    np.testing.assert_allclose(median(outputs).numpy(), np.median([o.numpy() for o in outputs], axis=0), atol=1e-7)


# ---- results --------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_output_is_pixel_aligned_and_beats_bicubic_interpolation(seed):
    """Every seed clears both margins (seeds 0-5, AMD EPYC: 4.3-6.2 dB over bicubic, shifted
    outputs 2.3-3.3 dB worse)."""
    gt = ground_truth("baby.png", 96)
    # degraded in MATLAB's geometry, as zssrgan.datasets does: the kernel centred for x2
    lr = np.clip(imresize(gt, 0.5, kernel=kernel_shift(KERNEL, 2)), 0, 1).astype(np.float32)
    cfg = small_config(iters=150)
    trainer = trainer_for(lr, cfg, seed=seed)
    while not trainer.finished:
        trainer.step()
    sr = trainer.infer()
    assert sr.shape == gt.shape and sr.dtype == np.float32
    score = psnr(sr, gt, 2, True)
    assert score > psnr(np.clip(imresize(lr, 2), 0, 1), gt, 2, True) + 1.0
    for axis in (0, 1):
        for offset in (-0.5, 0.5):
            shift = [0.0, 0.0, 0.0]
            shift[axis] = offset
            moved = np.clip(ndimage.shift(sr, shift, order=3, mode="reflect"), 0, 1)
            assert psnr(moved, gt, 2, True) < score - 0.5, (axis, offset)


def test_gradual_x4_runs_both_stages_and_returns_four_times_the_size():
    gt = ground_truth("bird.png", 128)
    lr = np.clip(imresize(gt, 0.25, kernel=analytic_x4_kernel(KERNEL)), 0, 1).astype(np.float32)
    phases = []
    sr, timings = zssr_super_resolve(lr, 4, {2: KERNEL}, small_config(iters=6), Config().zssr.kernelgan,
                                     callback=lambda phase, step, values: phases.append((phase, step)))
    assert sr.shape == (128, 128, 3) and sr.dtype == np.float32 and 0 <= sr.min() and sr.max() <= 1
    assert [p for p, _ in phases] == ["zssr_x2"] * 6 + ["zssr_x4"] * 6
    assert set(timings) == {"zssr_x2_train", "zssr_x2_infer", "zssr_x4_train", "zssr_x4_infer"}


def test_real_photo_settings_add_noise_to_sons_and_skip_back_projection():
    lr = ground_truth(size=64)
    trainer = trainer_for(lr, small_config(), real=True)
    assert trainer.bp_iters == 0 and trainer.noise_std == 0.0125
    father, _ = trainer._father()
    noise = to_numpy(trainer.degrade(father)) - np.clip(imresize(to_numpy(father), 0.5, kernel=kernel_shift(KERNEL, 2)), 0, 1)
    assert noise.std() == pytest.approx(0.0125, rel=0.2)
    cfg = small_config(iters=3)
    cfg.real = True
    sr, _ = zssr_super_resolve(lr, 2, None, cfg, cfg.zssr.kernelgan)
    assert sr.shape == (128, 128, 3)


def test_same_seed_same_output_other_seed_other_output():
    lr = np.clip(imresize(ground_truth(size=64), 0.5), 0, 1).astype(np.float32)
    cfg = small_config(iters=8)
    original = cfg.zssr.original  # augmentation, affine warps, self-ensemble, 10 back-projections
    first, _ = zssr_super_resolve(lr, 2, None, cfg, original)
    again, _ = zssr_super_resolve(lr, 2, None, cfg, original)
    other, _ = zssr_super_resolve(lr, 2, None, dataclasses.replace(cfg, seed=1), original)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


class SmoothnessExtension:
    """A real extension: a total-variation penalty on the output, and a count of the steps."""

    def __init__(self, sf: int, trainer: ZSSRTrainer) -> None:
        self.sf, self.trainer, self.outputs, self.steps = sf, trainer, [], []

    def loss(self, output: torch.Tensor):
        self.outputs.append(output)
        tv = (output[..., 1:, :] - output[..., :-1, :]).abs().mean()
        return 0.1 * tv, {"tv": float(tv.detach())}

    def after_step(self, step: int, trainer: ZSSRTrainer):
        assert trainer is self.trainer
        self.steps.append(step)
        return {"sf": float(self.sf)}


def test_extension_loss_and_after_step_are_called_and_reported():
    lr = np.clip(imresize(ground_truth(size=64), 0.5, kernel=KERNEL), 0, 1).astype(np.float32)
    extensions, reported = [], []

    def make(sf, trainer):
        extensions.append(SmoothnessExtension(sf, trainer))
        return extensions[-1]

    zssr_super_resolve(lr, 2, {2: KERNEL}, small_config(iters=5), Config().zssr.kernelgan, extension=make,
                       callback=lambda phase, step, values: reported.append(dict(values)))
    (ext,) = extensions
    assert ext.steps == [0, 1, 2, 3, 4] and len(ext.outputs) == 5
    assert all(o.requires_grad and o.shape == (1, 3, 32, 32) for o in ext.outputs)
    assert all({"tv", "sf", "lr"} <= set(values) for values in reported) and len(reported) == 5


def test_bad_inputs_are_rejected_with_clear_messages():
    lr = ground_truth(size=64)
    with pytest.raises(ValueError, match="HxWx3"):
        zssr_super_resolve(lr[..., 0], 2, None, small_config(), Config().zssr.kernelgan)
    with pytest.raises(ValueError, match="scale 2 or 4"):
        zssr_super_resolve(lr, 3, None, small_config(), Config().zssr.kernelgan)
    with pytest.raises(ValueError, match="too small"):
        zssr_super_resolve(lr[:6, :6], 2, None, small_config(), Config().zssr.kernelgan)
    with pytest.raises(ValueError, match="x2 kernel"):
        zssr_super_resolve(lr, 4, {4: KERNEL}, small_config(), Config().zssr.kernelgan)
    with pytest.raises(ValueError, match="zssr.crop must be at least 8 at x2"):  # the setting, not the image
        zssr_super_resolve(lr, 2, None, small_config(crop=6), Config().zssr.kernelgan)
    for key, value, low in (("depth", 1, 2), ("test_every", 0, 1), ("channels", 0, 1)):
        with pytest.raises(ValueError, match=f"zssr.{key} must be at least {low}, got {value}"):
            small_config(**{key: value})
