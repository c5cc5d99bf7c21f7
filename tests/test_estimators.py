"""The kernel-estimator stage: the table, the cross-scale cue, and failed estimates that are seen."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zssrgan.auto import family_kernel, principal_axes, shrink
from zssrgan.cli import main
from zssrgan.config import apply_overrides, preset
from zssrgan.cross_scale import cross_scale_sigma
from zssrgan.estimators import ESTIMATORS, EstimateFailed, EstimatorError, run_estimator
from zssrgan.io import load_image
from zssrgan.kernels import anisotropic_gaussian, isotropic_gaussian, kernel_shift, kernel_width, matlab_bicubic_kernel
from zssrgan.methods import run_method
from zssrgan.resize import imresize

CLASSIC = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "classic"


def _degraded(name: str, sigma: float, size: int = 160) -> np.ndarray:
    hr = load_image(CLASSIC / f"{name}.png")
    top, left = max(0, (hr.shape[0] - size) // 2), max(0, (hr.shape[1] - size) // 2)  # all of a smaller side
    kernel = kernel_shift(isotropic_gaussian(13, sigma), 2)
    return np.clip(imresize(hr[top:top + size, left:left + size], scale=0.5, kernel=kernel), 0, 1).astype(np.float32)


def test_the_table_lists_each_estimator_once_name_first(capsys):
    assert main(["estimators"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(ESTIMATORS)
    assert "zssrgan-e2e does not apply" in lines[list(ESTIMATORS).index("cross-scale")]


@pytest.mark.parametrize("name", ["baby", "bird", "woman", "lenna"])
def test_the_cross_scale_width_follows_the_blur(name):
    """Closed form (no randomness): a wider Gaussian degradation reads wider, by a clear margin."""
    narrow, _ = cross_scale_sigma(_degraded(name, 0.8))
    wide, _ = cross_scale_sigma(_degraded(name, 2.0))
    assert wide > narrow + 0.4


def test_a_cross_scale_estimate_is_a_valid_centred_kernel_pair():
    cfg = apply_overrides(preset("quick"), ["estimator=cross-scale"])
    estimate = run_estimator(_degraded("baby", 1.6), 4, cfg)
    assert estimate.estimator == "cross-scale" and estimate.discriminator is None
    for scale, kernel in estimate.kernels.items():
        assert kernel.sum() == pytest.approx(1, abs=1e-2) and kernel.shape[0] % 2 == 1
    assert estimate.diagnostics["width"] == pytest.approx(kernel_width(estimate.kernels[2]))
    assert estimate.diagnostics["failed"] == 0 and 0.4 <= estimate.diagnostics["sigma"] <= 2.5


def test_a_collapsed_kernelgan_run_fails_with_its_reason_and_diagnostics():
    """Forced deterministically: with G's learning rate 0, G keeps its initial near-zero kernel."""
    cfg = apply_overrides(preset("quick"), ["kernelgan.iters=30", "kernelgan.n_crop_positions=30",
                                            "kernelgan.lr_g=0", "device=cpu"])
    lr = _degraded("baby", 1.2, 200)
    with pytest.raises(EstimateFailed, match="KernelGAN collapsed: G's raw kernel sums to") as failed:
        run_estimator(lr, 2, cfg)
    assert failed.value.diagnostics["raw_sum"] < 0.25 and failed.value.diagnostics["failed"] == 1
    assert "a run of 30 steps rarely gets past the bicubic phase: raise kernelgan.iters" in str(failed.value)
    with pytest.raises(EstimateFailed, match="KernelGAN collapsed"):  # and so does every method that uses it
        run_method("kernelgan-zssr", lr, 2, cfg)
    relaxed = run_estimator(lr, 2, apply_overrides(cfg, ["strict_estimates=false"]))
    assert relaxed.diagnostics["failed"] == 1  # recorded, handed on


def test_e2e_refuses_an_estimator_without_a_generator():
    cfg = apply_overrides(preset("quick"), ["estimator=cross-scale"])
    with pytest.raises(EstimatorError, match="zssrgan-e2e trains the estimator's generator.*runs with: kernelgan"):
        run_method("zssrgan-e2e", _degraded("baby", 1.2, 96), 2, cfg)
    with pytest.raises(EstimatorError, match="unknown kernel estimator 'nope'"):
        run_method("kernelgan-zssr", _degraded("baby", 1.2, 96), 2, apply_overrides(cfg, ["estimator=nope"]))


# ---- auto -----------------------------------------------------------------------------------------

def test_principal_axes_recover_an_anisotropic_gaussian():
    major, minor, theta = principal_axes(anisotropic_gaussian(21, 4.0, 1.0, np.radians(30)))
    assert major == pytest.approx(2.0, rel=0.02) and minor == pytest.approx(1.0, rel=0.02)
    assert np.degrees(theta) % 180 == pytest.approx(30, abs=1)


def test_the_family_starts_at_the_cubic_kernel_and_widens_with_t():
    assert np.array_equal(family_kernel(0.0), matlab_bicubic_kernel(2))
    widths = [kernel_width(family_kernel(t)) for t in (0.0, 0.5, 1.0, 2.0)]
    assert widths == sorted(widths) and widths[-1] > 2.0
    assert [shrink(t, 0.5, 1.4) for t in (0.3, 0.5, 0.95, 1.4, 2.0)] == pytest.approx([0, 0, 0.7, 1.4, 2.0])


@pytest.mark.parametrize("source", ["model", "cue"])
def test_auto_reads_sharp_images_as_the_cubic_kernel_and_follows_the_blur(source):
    """Either width source alone (use_gan=false: closed form). Sharp bicubic-downscaled images get
    (nearly) the cubic kernel on most images; a wider blur always reads wider."""
    cfg = apply_overrides(preset("quick"), ["estimator=auto", "auto.use_gan=false", f"auto.width_from={source}"])
    sharp, narrow, wide = [], [], []
    for name in ("woman", "coastguard", "foreman", "head"):
        hr = load_image(CLASSIC / f"{name}.png")[:400, :400]
        bicubic = np.clip(imresize(hr, scale=0.5), 0, 1).astype(np.float32)
        sharp.append(run_estimator(bicubic, 2, cfg).diagnostics["extra_blur"])
        narrow.append(run_estimator(_degraded(name, 1.0, 400), 2, cfg).diagnostics["width"])
        wide.append(run_estimator(_degraded(name, 2.2, 400), 2, cfg).diagnostics["width"])
    assert sum(t <= 0.3 for t in sharp) >= 3
    assert all(w > n + 0.3 for n, w in zip(narrow, wide))


def test_a_bare_cubic_reading_hands_on_matlabs_own_x4_cubic_kernel():
    hr = load_image(CLASSIC / "lenna.png")[:400, :400]
    estimate = run_estimator(np.clip(imresize(hr, scale=0.25), 0, 1).astype(np.float32), 4,
                             apply_overrides(preset("quick"), ["estimator=auto"]))
    assert estimate.diagnostics["extra_blur"] == 0
    assert np.array_equal(estimate.kernels[2], matlab_bicubic_kernel(2))
    assert np.array_equal(estimate.kernels[4], matlab_bicubic_kernel(4))


def test_an_oriented_family_kernel_has_the_axes_it_was_given():
    """What auto builds from a GAN's axes: the cubic kernel plus an extra blur of that aspect and angle."""
    kernel = family_kernel(2.0, aspect=3.0, theta=np.radians(120))
    major, minor, theta = principal_axes(kernel)
    assert major / minor > 2.0 and np.degrees(theta) % 180 == pytest.approx(120, abs=2)
    assert kernel_width(kernel) == pytest.approx(kernel_width(family_kernel(2.0)), rel=0.05)  # same RMS width
