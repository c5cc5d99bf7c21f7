"""KernelGAN's losses against hand-worked values."""
import numpy as np
import pytest
import torch

from zssrgan.kernels import centred_position
from zssrgan.losses import (BICUBIC_X2, adversarial_l1, bicubic_downscale, boundaries_loss, boundaries_mask,
                            centralized_loss, sparsity_loss, sum_to_one_loss)
from zssrgan.resize import imresize


def test_adversarial_loss_is_l1_against_ones_or_zeros():
    d_map = torch.tensor([[[[0.2, 0.6]]]])
    assert adversarial_l1(d_map, real=True).item() == pytest.approx((0.8 + 0.4) / 2)
    assert adversarial_l1(d_map, real=False).item() == pytest.approx((0.2 + 0.6) / 2)


def test_bicubic_kernel_is_matlab_half_scale_cubic_and_the_published_table():
    assert BICUBIC_X2.sum() == pytest.approx(1.0)
    # entries as the published code lists them
    assert BICUBIC_X2[0, 0] == pytest.approx(0.0001373291015625, abs=1e-15)
    assert BICUBIC_X2[3, 3] == pytest.approx(0.188003540039063, abs=1e-14)
    assert BICUBIC_X2[2, 3] == pytest.approx(0.0491180419921875, abs=1e-15)
    # and it is MATLAB's x0.5 cubic: imresize's interior pixel m = correlation starting at row 2m - 3
    image = np.random.default_rng(0).random((32, 32))
    down = bicubic_downscale(torch.tensor(image[None, None, 1:, 1:]), torch.tensor(BICUBIC_X2))[0, 0].numpy()
    np.testing.assert_allclose(imresize(image, scale=0.5)[2:13, 2:13], down[:11, :11], atol=1e-10)


def test_sum_to_one():
    assert sum_to_one_loss(torch.full((13, 13), 0.01)).item() == pytest.approx(0.69)
    assert sum_to_one_loss(torch.full((13, 13), 1 / 169)).item() == pytest.approx(0.0, abs=1e-6)


def test_boundaries_mask_penalises_only_the_outer_ring():
    mask = boundaries_mask(13)
    assert mask.shape == (13, 13)
    assert np.all(mask[2:11, 2:11] == 0)  # centre 9x9 free
    assert mask[0, 0] == pytest.approx(30 * (1 - np.exp(-72 / 338)))  # Gaussian sigma 13 at (-6, -6)
    assert mask[1, 6] == pytest.approx(30 * (1 - np.exp(-25 / 338)))
    np.testing.assert_allclose(mask, mask.T)
    kernel = torch.ones(13, 13)
    assert boundaries_loss(kernel, torch.tensor(mask)).item() == pytest.approx(mask.mean(), rel=1e-6)


def test_centralized_loss_measures_the_centre_of_mass_against_6_5():
    assert centred_position(13, 2) == 6.5
    delta = torch.zeros(13, 13)
    delta[6, 6] = 1.0
    assert centralized_loss(delta).item() == pytest.approx(0.25)  # (0.5^2 + 0.5^2) / 2
    delta = torch.zeros(13, 13)
    delta[8, 6] = 1.0
    assert centralized_loss(delta).item() == pytest.approx(1.25)  # (1.5^2 + 0.5^2) / 2
    pair = torch.zeros(13, 13)
    pair[6:8, 6:8] = 0.25  # centre of mass exactly (6.5, 6.5)
    assert centralized_loss(pair).item() == pytest.approx(0.0, abs=1e-12)


def test_sparsity_loss_is_mean_of_fifth_root():
    assert sparsity_loss(torch.full((13, 13), 1 / 32)).item() == pytest.approx(0.5)
    assert sparsity_loss(-torch.full((4, 4), 1 / 32)).item() == pytest.approx(0.5)
