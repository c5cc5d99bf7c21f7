"""FKP's kernel prior: the flow is invertible, training raises the held-out likelihood, the shipped
weights give valid centred kernels, and bad files are refused with a clear error."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zssrgan.archs.flow_arch import prior_shape
from zssrgan.cli import main
from zssrgan.kernels import center_of_mass, centred_position, gaussian_prior_kernels, kernel_width
from zssrgan.train.prior import (PriorError, PriorTrainingConfig, build_prior, held_out_kernels, load_prior,
                                 mean_log_likelihood, sample_kernels, save_prior, shipped_prior_path, train_prior)


def test_training_kernels_follow_the_project_convention():
    kernels = gaussian_prior_kernels(np.random.default_rng(0), 50, 11, 2, 0.35, 5.0)
    assert kernels.shape == (50, 11, 11) and kernels.min() >= 0
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-12)
    for kernel in kernels:  # exactly where kernel_shift centres a x2 kernel
        np.testing.assert_allclose(center_of_mass(kernel), centred_position(11, 2), atol=1e-6)


@pytest.mark.parametrize("training", [False, True])
def test_inverse_undoes_forward(training):
    prior = load_prior()
    prior.train(training)  # in training the inverse undoes the batch statistics the forward pass used
    x = prior.to_logit(torch.from_numpy(gaussian_prior_kernels(np.random.default_rng(1), 64, 11, 2, 0.35, 5.0)))
    x = x.float()
    with torch.no_grad():
        z, log_det = prior(x)
        back, inverse_log_det = prior.inverse(z)
    torch.testing.assert_close(back, x, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(inverse_log_det, -log_det, atol=1e-2, rtol=1e-4)
    assert not torch.allclose(z, x, atol=0.1)  # the flow does transform


def test_training_raises_the_held_out_likelihood():
    """Two short trainings (80 steps of 100 kernels) from different seeds: each gains on the
    published validation grid by a wide margin over its initialisation."""
    for seed in (0, 1):
        cfg = PriorTrainingConfig(epochs=2, kernels_per_epoch=4000, lr=1e-3, seed=seed)
        curve = []
        _, report = train_prior(cfg, lambda phase, step, values: curve.append(values))
        assert len(curve) == 2 and curve[-1]["held_out_log_likelihood"] == report["held_out_log_likelihood"]
        assert report["held_out_log_likelihood"] > report["held_out_log_likelihood_init"] + 1000


def test_shipped_prior_beats_an_untrained_one():
    rng = np.random.default_rng(2)
    kernels = held_out_kernels(2)
    noise = rng.uniform(0.0, PriorTrainingConfig().noise, size=(len(kernels), 121))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = build_prior(2)
    trained = mean_log_likelihood(load_prior(), kernels, noise)
    assert trained > mean_log_likelihood(untrained, kernels, noise) + 1000
    assert shipped_prior_path(2).stat().st_size < 400_000


def test_samples_are_valid_centred_kernels_of_the_training_range():
    kernels = sample_kernels(load_prior(), 200, np.random.default_rng(3))
    assert kernels.shape == (200, 11, 11) and kernels.min() >= 0
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-9)
    offsets = np.array([center_of_mass(k) for k in kernels]) - centred_position(11, 2)
    assert np.abs(offsets.mean(0)).max() < 0.1  # centred on average ...
    assert np.quantile(np.abs(offsets), 0.9) < 0.35  # ... and each nearly so
    widths = np.array([kernel_width(k) for k in kernels])
    # training widths: sqrt of variances in [0.35, 5], truncated to 11 taps: about 0.6 to 2.1
    assert 0.5 < widths.min() and widths.max() < 2.4 and widths.std() > 0.2


def test_loading_refuses_a_prior_of_the_wrong_shape(tmp_path):
    x4 = build_prior(4)
    save_prior(tmp_path / "x4.npz", x4, 4)
    with pytest.raises(PriorError, match=r"a prior for x4 \(19x19 kernels\); x2 needs 11x11 kernels"):
        load_prior(tmp_path / "x4.npz", scale=2)

    prior = build_prior(2)
    save_prior(tmp_path / "x2.npz", prior, 2)
    with np.load(tmp_path / "x2.npz", allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays["layers.0.s_net.0.weight"] = arrays["layers.0.s_net.0.weight"][:10]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(PriorError, match=r"layers\.0\.s_net\.0\.weight has shape \(10, 121\), the flow needs \(15, 121\)"):
        load_prior(tmp_path / "bad.npz")


def test_loading_refuses_pickles_and_missing_files(tmp_path):
    np.savez(tmp_path / "pickled.npz", weights=np.array([{"a": 1}], dtype=object))
    with pytest.raises(PriorError, match="not a kernel prior file"):
        load_prior(tmp_path / "pickled.npz")
    with pytest.raises(PriorError, match="no kernel prior at"):
        load_prior(tmp_path / "absent.npz")


def test_prior_train_command(tmp_path, capsys):
    out = tmp_path / "prior.npz"
    assert main(["prior", "train", "--scale", "2", "--out", str(out), "--epochs", "1",
                 "--kernels-per-epoch", "300", "--seed", "5"]) == 0
    assert "[prior] epoch 1/1" in capsys.readouterr().err
    assert load_prior(out).kernel_size == prior_shape(2)["kernel_size"]
    with np.load(out, allow_pickle=False) as npz:
        assert int(npz["meta.train_seed"]) == 5 and float(npz["meta.seconds"]) > 0
    assert main(["prior", "train", "--out", str(tmp_path / "prior.pt"), "--epochs", "1"]) == 2
    assert "--out must name an .npz file" in capsys.readouterr().err
