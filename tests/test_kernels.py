"""Kernels: centring vectors, the analytic x4 kernel, the DIV2KRK sampler, post-processing,
MATLAB's bicubic kernel and validation."""
from pathlib import Path

import numpy as np
import pytest
import torch

from zssrgan.kernels import (RECENTRING_PAD, KernelError, analytic_x4_kernel, analytic_x4_kernel_torch,
                             anisotropic_gaussian, anisotropic_gaussians, center_of_mass, isotropic_gaussian,
                             kernel_shift, kernel_shift_torch, kernel_width, kernel_width_torch, matlab_bicubic_kernel,
                             postprocess_kernel, postprocess_kernel_torch, sample_div2krk_kernel, validate_kernel,
                             zeroize_negligible, zeroize_negligible_torch)
from zssrgan.resize import imresize, imresize_torch

VECTORS = np.load(Path(__file__).parent / "data" / "imresize_vectors.npz", allow_pickle=False)


def second_moment_eigenvalues(kernel):
    rows, cols = (np.arange(n) - c for n, c in zip(kernel.shape, center_of_mass(kernel)))
    y, x = np.meshgrid(rows, cols, indexing="ij")
    covariance = [[(kernel * x * x).sum(), (kernel * x * y).sum()], [(kernel * x * y).sum(), (kernel * y * y).sum()]]
    return np.linalg.eigvalsh(covariance)


@pytest.mark.parametrize("sf", [2, 4])
def test_kernel_shift_matches_vectors(sf):
    expected = VECTORS[f"kernel_shift_of_11x11_sf{sf}"]
    np.testing.assert_allclose(kernel_shift(VECTORS["kernel_11x11"], sf), expected, rtol=0, atol=1e-6)
    pad = (expected.shape[0] - 11) // 2
    np.testing.assert_allclose(center_of_mass(expected), 5 + 0.5 * (sf - 1) + pad, atol=1e-2)


def test_gaussians_are_normalised_centred_and_oriented():
    wide = anisotropic_gaussian(11, 4.0, 1.0, 0.0)
    offsets = np.arange(11) - 5
    assert (wide.sum(axis=0) * offsets**2).sum() > 3 * (wide.sum(axis=1) * offsets**2).sum()  # along x
    np.testing.assert_allclose(anisotropic_gaussian(11, 4.0, 1.0, np.pi / 2), wide.T, atol=1e-12)
    round_ = isotropic_gaussian(9, 1.2)
    np.testing.assert_allclose(round_, round_.T, atol=1e-15)
    for kernel in (wide, round_):
        assert kernel.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(center_of_mass(kernel), np.array(kernel.shape) // 2, atol=1e-9)


def test_div2krk_sampler_is_seeded_and_within_the_protocol():
    first = sample_div2krk_kernel(np.random.default_rng(7))
    np.testing.assert_array_equal(first, sample_div2krk_kernel(np.random.default_rng(7)))
    assert not np.allclose(first, sample_div2krk_kernel(np.random.default_rng(8)))
    rng = np.random.default_rng(0)
    kernels = [sample_div2krk_kernel(rng) for _ in range(200)]
    eigenvalues = np.array([second_moment_eigenvalues(k) for k in kernels])
    for kernel in kernels:
        assert kernel.shape == (11, 11) and kernel.min() >= 0 and kernel.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(center_of_mass(kernel), 5.0, atol=0.3)  # mean on the centre tap
    # Variances drawn from U(0.6, 5) (the 11x11 window trims the largest a little).
    assert 0.45 < eigenvalues.min() < 0.9 and 4.0 < eigenvalues.max() < 5.5
    assert len({k.tobytes() for k in kernels}) == 200


def test_analytic_x4_kernel_equals_two_x2_degradations():
    k2 = sample_div2krk_kernel(np.random.default_rng(1))
    k4 = analytic_x4_kernel(k2)
    assert k4.shape == (31, 31) and k4.sum() == pytest.approx(1.0)
    image = np.random.default_rng(2).random((64, 64, 3))
    twice = imresize(imresize(image, scale=0.5, kernel=k2), scale=0.5, kernel=k2)
    once = imresize(image, scale=0.25, kernel=k4)
    np.testing.assert_allclose(once[5:-5, 5:-5], twice[5:-5, 5:-5], atol=1e-12)
    cropped = analytic_x4_kernel(k2, crop=True)
    assert cropped.shape == (21, 21) and cropped.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(cropped, k4[5:-5, 5:-5] / k4[5:-5, 5:-5].sum())


def test_zeroize_negligible_keeps_the_strong_taps_only():
    kernel = np.random.default_rng(3).random((13, 13)) ** 4
    filtered = zeroize_negligible(kernel, n=40)
    strongest = np.sort(kernel.ravel())[::-1]
    assert filtered.sum() == pytest.approx(1.0) and filtered.min() >= 0
    assert np.all(filtered[kernel >= strongest[40]] > 0)
    assert np.all(filtered[kernel <= 0.75 * strongest[40]] == 0)
    small = np.array([[0.5, -0.1], [0.3, 0.3]])  # fewer taps than n: only the negative one goes
    np.testing.assert_allclose(zeroize_negligible(small), np.array([[0.5, 0], [0.3, 0.3]]) / 1.1)


def test_postprocessing_of_a_kernelgan_sized_kernel():
    raw = isotropic_gaussian(13, 1.5) * (1 + 0.2 * np.random.default_rng(4).random((13, 13)))
    raw = np.roll(raw, 1, axis=1)  # an estimate off by a tap
    kernel = postprocess_kernel(raw, 2)
    assert kernel.shape == (17, 17)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(center_of_mass(kernel), 8.5, atol=1e-2)


# ---- the device post-processing: NumPy's, on a canvas ----------------------------------------------

def on_canvas(kernel: np.ndarray, canvas: torch.Tensor) -> np.ndarray:
    """``kernel`` at the centre of a zero array the canvas's size."""
    pad = (canvas.shape[0] - kernel.shape[0]) // 2
    assert pad >= 0 and 2 * pad + kernel.shape[0] == canvas.shape[0]
    return np.pad(kernel, pad)


def g_like_kernels() -> dict[str, np.ndarray]:
    """13x13 kernels as KernelGAN's G gives them, and harder ones: off-centre, anisotropic, with
    small negative taps; uniform noise; almost a delta in a corner (the farthest shift)."""
    rng = np.random.default_rng(11)
    kernels = {}
    for i in range(4):
        gaussian = anisotropic_gaussian(13, *rng.uniform(0.4, 6.0, 2), rng.uniform(0, np.pi))
        gaussian = np.roll(gaussian, tuple(rng.integers(-3, 4, 2)), axis=(0, 1))
        kernels[f"g_like_{i}"] = gaussian * (1 + 0.3 * rng.standard_normal((13, 13))) - 0.002 * rng.random((13, 13))
    kernels["noise"] = rng.random((13, 13))
    kernels["corner"] = 1e-5 * rng.random((13, 13))
    kernels["corner"][0, 12] = 1.0
    return kernels


@pytest.mark.parametrize("name", list(g_like_kernels()))
def test_device_post_processing_is_numpys_on_a_canvas(name):
    raw = g_like_kernels()[name]
    k2 = postprocess_kernel(raw, 2)
    canvas, side = postprocess_kernel_torch(torch.as_tensor(raw), 2)
    assert canvas.shape == (29, 29) and int(side) == k2.shape[0]
    assert name != "corner" or int(side) == 29  # the farthest centre of mass fills the canvas
    np.testing.assert_allclose(canvas.numpy(), on_canvas(k2, canvas), rtol=0, atol=1e-12)
    # what ZSSR's trainer then does with it: centre for x2, or centre the analytic x4 for x4
    centred, centred_side = kernel_shift_torch(canvas, 2, side, RECENTRING_PAD)
    expected = kernel_shift(k2, 2)
    assert int(centred_side) == expected.shape[0]
    np.testing.assert_allclose(centred.numpy(), on_canvas(expected, centred), rtol=0, atol=1e-12)
    k4, k4_side = analytic_x4_kernel_torch(canvas, side)
    np.testing.assert_allclose(k4.numpy(), on_canvas(analytic_x4_kernel(k2, crop=True), k4), rtol=0, atol=1e-12)
    centred, centred_side = kernel_shift_torch(k4, 4, k4_side, RECENTRING_PAD)
    expected = kernel_shift(analytic_x4_kernel(k2, crop=True), 4)
    assert centred.shape == (63, 63) and int(centred_side) == expected.shape[0]
    np.testing.assert_allclose(centred.numpy(), on_canvas(expected, centred), rtol=0, atol=1e-12)


@pytest.mark.parametrize("sf", [2, 4])
def test_device_kernel_shift_matches_vectors(sf):
    expected = VECTORS[f"kernel_shift_of_11x11_sf{sf}"]
    centred, side = kernel_shift_torch(torch.as_tensor(VECTORS["kernel_11x11"]), sf)
    assert int(side) == expected.shape[0]
    np.testing.assert_allclose(centred.numpy(), on_canvas(expected, centred), rtol=0, atol=1e-6)


def test_device_zeroize_negligible_is_numpys():
    kernel = np.random.default_rng(3).random((13, 13)) ** 4 - 0.01
    np.testing.assert_allclose(zeroize_negligible_torch(torch.as_tensor(kernel)).numpy(), zeroize_negligible(kernel),
                               rtol=0, atol=1e-15)
    small = np.array([[0.5, -0.1], [0.3, 0.3]])
    np.testing.assert_allclose(zeroize_negligible_torch(torch.as_tensor(small)).numpy(), zeroize_negligible(small))
    # where NumPy raises, the device gives NaN (the trainer reports it at its next report)
    assert torch.isnan(zeroize_negligible_torch(-torch.ones(13, 13, dtype=torch.float64))).all()


def test_a_bigger_zero_border_degrades_the_same():
    """Why canvases may replace NumPy's data-dependent sizes: the son does not change."""
    kernel = kernel_shift(postprocess_kernel(g_like_kernels()["g_like_0"], 2), 2)
    image = torch.rand(1, 3, 40, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sons = [imresize_torch(image, scale=0.5, kernel=torch.as_tensor(np.pad(kernel, pad))) for pad in (0, 7)]
    torch.testing.assert_close(sons[0], sons[1], rtol=0, atol=1e-15)


def test_device_post_processing_never_reads_the_device():
    """On the meta device tensors hold no data: any host read (.item(), float(), bool(), .cpu(),
    a tensor used as a Python index) raises. The output sizes cannot depend on the data either."""
    raw = torch.empty(13, 13, dtype=torch.float64, device="meta")
    k2, side = postprocess_kernel_torch(raw, 2)
    centred, _ = kernel_shift_torch(k2, 2, side, RECENTRING_PAD)
    k4, k4_side = analytic_x4_kernel_torch(k2, side)
    centred4, _ = kernel_shift_torch(k4, 4, k4_side, RECENTRING_PAD)
    assert (k2.shape, centred.shape, k4.shape, centred4.shape) == ((29, 29), (35, 35), (57, 57), (63, 63))
    with pytest.raises(RuntimeError, match="meta"):
        float(side)


@pytest.mark.parametrize("sf", [2, 3, 4])
def test_matlab_bicubic_kernel_reproduces_cubic_downscaling(sf):
    kernel = matlab_bicubic_kernel(sf)
    assert kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(center_of_mass(kernel), kernel.shape[0] // 2 + 0.5 * (sf - 1), atol=1e-9)
    centred = kernel_shift(kernel, sf)
    pad = (centred.shape[0] - kernel.shape[0]) // 2
    np.testing.assert_allclose(centred[pad:-pad, pad:-pad], kernel, atol=1e-9)  # already centred
    image = np.random.default_rng(5).random((12 * sf, 12 * sf, 3))
    margin = 3
    np.testing.assert_allclose(imresize(image, scale=1 / sf, kernel=kernel)[margin:-margin, margin:-margin],
                               imresize(image, scale=1 / sf)[margin:-margin, margin:-margin], atol=1e-12)


def test_matlab_bicubic_kernel_needs_an_integer_scale():
    with pytest.raises(ValueError, match="integer"):
        matlab_bicubic_kernel(1.5)


@pytest.mark.parametrize("kernel, problem", [
    (np.ones(5), "2-D"),
    (np.ones((65, 3)), "between 1 and 64"),
    (np.full((3, 3), np.nan), "NaN"),
    (np.zeros((3, 3)), "sums to 0"),
    (-np.ones((3, 3)), "positive sum"),
    ([["a", "b"]], "numeric"),
])
def test_validate_kernel_names_source_and_problem(kernel, problem):
    with pytest.raises(KernelError, match=problem) as error:
        validate_kernel(kernel, "kernel_7.mat")
    assert "kernel_7.mat" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_validate_kernel_returns_float64():
    assert validate_kernel([[0.1, 0.2], [0.3, 0.4]]).dtype == np.float64


def test_a_kernel_not_summing_to_one_is_normalised_with_a_warning():
    bright = np.clip(matlab_bicubic_kernel(2), 0.0, None)  # negative lobes cut: sums to about 1.2
    with pytest.warns(UserWarning, match="not 1; it is normalised"):
        kernel = validate_kernel(bright, "k.npy")
    assert kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel * bright.sum(), bright)


def test_gaussian_batches_equal_single_kernels_and_follow_their_mean():
    rng = np.random.default_rng(5)
    l1, l2, theta = rng.uniform(0.4, 5, 6), rng.uniform(0.4, 5, 6), rng.uniform(0, np.pi, 6)
    batch = anisotropic_gaussians(13, l1, l2, theta)
    for k, args in zip(batch, zip(l1, l2, theta)):
        np.testing.assert_allclose(k, anisotropic_gaussian(13, *args), atol=1e-15)
    moved = anisotropic_gaussians(31, [1.0], [1.0], [0.0], mean=[[14.0, 16.5]])[0]  # far from the border
    np.testing.assert_allclose(center_of_mass(moved), [14.0, 16.5], atol=1e-9)


def test_width_on_the_device_equals_numpy():
    rng = np.random.default_rng(6)
    for _ in range(5):
        kernel = rng.random((11, 11)) - 0.1  # negative taps are ignored by both
        assert kernel_width_torch(torch.from_numpy(kernel)).item() == pytest.approx(kernel_width(kernel), rel=1e-12)
    assert kernel_width(isotropic_gaussian(31, 1.5)) == pytest.approx(1.5, rel=1e-6)
