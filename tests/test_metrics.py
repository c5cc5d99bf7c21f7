"""Metrics: hand-computable cases, an independent SSIM, and the published kernel-error reference."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage, signal

from zssrgan.io import load_image
from zssrgan.kernels import analytic_x4_kernel, isotropic_gaussian
from zssrgan.metrics import (evaluate, kernel_error, kernel_psnr, lr_consistency, psnr, rgb2y, sharpness,
                             ssim)
from zssrgan.resize import imresize

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "benchmarks" / "data" / "kernelgan_reference"


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return load_image(ROOT / "benchmarks" / "data" / "classic" / "baby.png")[100:164, 100:164].astype(np.float64)


def test_rgb2y_matches_matlab_rgb2ycbcr():
    pixels = np.array([[[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], dtype=np.float64)
    expected = np.array([16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966]) / 255
    np.testing.assert_allclose(rgb2y(pixels)[0], expected, atol=1e-12)
    with pytest.raises(ValueError, match="HxWx3"):
        rgb2y(np.zeros((4, 4)))


def test_psnr_hand_cases():
    ref = np.zeros((8, 8, 3))
    assert psnr(ref + 0.1, ref) == pytest.approx(20.0)  # MSE 0.01
    assert psnr(ref, ref) == float("inf")
    # Y of a uniform +0.1 offset moves by 0.1 * 219/255: PSNR = -20 log10(0.1 * 219 / 255)
    assert psnr(ref + 0.1, ref, test_y_channel=True) == pytest.approx(-20 * np.log10(0.1 * 219 / 255))


def test_crop_border_shaves_each_side():
    ref = np.full((10, 10, 3), 0.5)
    img = ref.copy()
    img[:2] = img[-2:] = img[:, :2] = img[:, -2:] = 1.0
    assert psnr(img, ref, crop_border=2) == float("inf")
    assert psnr(img, ref, crop_border=1) < 10
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr(img, ref, crop_border=5)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="pixel off"):
        psnr(np.zeros((65, 64, 3)), np.zeros((64, 64, 3)))
    with pytest.raises(ValueError, match="pixel off"):
        ssim(np.zeros((65, 64, 3)), np.zeros((64, 64, 3)))


def _field_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM as the field's evaluation code computes it, on 0..255 single-channel images: 11x11
    Gaussian window (sigma 1.5) applied 'valid', C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2."""
    a, b = a * 255.0, b * 255.0
    g = signal.windows.gaussian(11, 1.5)
    window = np.outer(g, g) / np.outer(g, g).sum()
    f = lambda x: signal.convolve2d(x, window, mode="valid")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    var_a, var_b, cov = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float(np.mean((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))))


def test_ssim_matches_the_field_convention(crop):
    blurred = ndimage.gaussian_filter(crop, sigma=(1.2, 1.2, 0))
    assert ssim(crop, crop) == pytest.approx(1.0)
    expected_y = _field_ssim(rgb2y(blurred)[4:-4, 4:-4], rgb2y(crop)[4:-4, 4:-4])
    assert ssim(blurred, crop, crop_border=4, test_y_channel=True) == pytest.approx(expected_y, abs=1e-9)
    expected_rgb = np.mean([_field_ssim(blurred[..., c], crop[..., c]) for c in range(3)])
    assert ssim(blurred, crop) == pytest.approx(expected_rgb, abs=1e-9)
    assert 0.3 < expected_y < 0.99


def test_kernel_error_reproduces_the_published_reference():
    """errors.json gives 4 decimals; the canvas size barely matters, the alignment and norm do."""
    published = json.loads((REFERENCE / "errors.json").read_text())
    generic = isotropic_gaussian(13, 1.5)
    for name, expected in published.items():
        truth = np.load(REFERENCE / "gt_k_x2" / f"{name}.npy", allow_pickle=False)
        estimate = np.load(REFERENCE / "published_code_estimate" / f"{name}.npy", allow_pickle=False)
        assert kernel_error(estimate, truth) == pytest.approx(expected["published_code_rel_error"], abs=5e-5)
        assert kernel_error(generic, truth) == pytest.approx(expected["generic_gaussian_rel_error"], abs=5e-5)


def test_kernel_error_ignores_position_and_handles_x4_kernels():
    truth = np.load(REFERENCE / "gt_k_x2" / "bird.npy", allow_pickle=False)
    shifted = np.pad(truth, ((0, 2), (2, 0)))  # same shape, two pixels off-centre
    assert kernel_error(truth, truth) == 0.0
    assert kernel_error(shifted, truth) < 1e-6
    k4 = analytic_x4_kernel(truth, crop=False)
    assert k4.shape == (31, 31)
    assert kernel_error(np.pad(k4, ((3, 0), (0, 3))), k4) < 1e-6  # canvas grows beyond 25x25
    assert kernel_error(isotropic_gaussian(31, 4.0), k4) > 0.1


def test_kernel_psnr_no_alignment():
    delta = np.ones((1, 1))
    assert kernel_psnr(np.zeros((3, 3)), delta) == pytest.approx(20 * np.log10(3))  # MSE 1/9 on 3x3
    k = isotropic_gaussian(13, 1.5)
    assert kernel_psnr(k, k) == float("inf")
    assert kernel_psnr(np.pad(k, ((1, 0), (1, 0)))[:13, :13], k) < kernel_psnr(isotropic_gaussian(13, 1.6), k)


def test_lr_consistency_and_sharpness(crop):
    k = np.load(REFERENCE / "gt_k_x2" / "woman.npy", allow_pickle=False)
    lr = imresize(crop, scale=0.5, kernel=k)
    assert lr_consistency(lr, crop, 2, k) > 100
    assert lr_consistency(lr, crop, 2) < 40  # the wrong degradation model shows
    assert lr_consistency(imresize(crop, scale=0.5), crop, 2) > 100
    blurred = ndimage.gaussian_filter(crop, sigma=(1.5, 1.5, 0))
    assert sharpness(blurred) < 0.7 * sharpness(crop)


def test_evaluate_reports_what_the_data_allows(crop):
    k = np.load(REFERENCE / "gt_k_x2" / "woman.npy", allow_pickle=False)
    lr = imresize(crop, scale=0.5, kernel=k)
    sr = np.clip(imresize(lr, scale=2), 0, 1)
    full = evaluate(sr, lr, 2, gt=crop, kernel_used=isotropic_gaussian(13, 1.5), true_kernel=k)
    assert set(full) == {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "kernel_error", "kernel_psnr",
                         "lr_consistency", "sharpness"}
    assert all(np.isfinite(v) for v in full.values())
    assert 20 < full["psnr_rgb"] < 40 and 0 < full["ssim_y"] < 1
    assert set(evaluate(sr, lr, 2)) == {"lr_consistency", "sharpness"}
    assert evaluate(crop, lr, 2, gt=crop, true_kernel=k)["psnr_y"] > 50  # 8-bit rounding only
