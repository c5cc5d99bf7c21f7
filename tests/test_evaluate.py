"""The plain job functions a sweep worker calls: load, run, score (no Ray, no MLflow)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zssrgan.config import apply_overrides, preset
from zssrgan.datasets import discover, make_dataset
from zssrgan.evaluate import evaluate_estimate, evaluate_method
from zssrgan.io import ImageError, load_image, save_image
from zssrgan.methods import METHODS

TINY = ["kernelgan.iters=20", "kernelgan.input_crop=32", "kernelgan.shave=0", "kernelgan.n_crop_positions=50",
        "zssr.iters=10", "zssr.crop=24", "strict_estimates=false", "device=cpu"]
ROOT = Path(__file__).resolve().parent.parent




@pytest.fixture(scope="module")
def hr(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hr")
    for name in ("baby", "bird"):
        save_image(folder / f"{name}.png", load_image(ROOT / "benchmarks/data/classic" / f"{name}.png")[:80, :80])
    return folder


@pytest.fixture(scope="module")
def div2krk(hr, tmp_path_factory):
    return discover(make_dataset(hr, tmp_path_factory.mktemp("sets") / "div2krk", scales=(2,)), 2)


@pytest.fixture(scope="module")
def cfg():
    return apply_overrides(preset("quick"), TINY)


def test_bicubic_on_a_div2krk_item_is_scored_against_ground_truth(div2krk, cfg):
    item = div2krk[0]
    evaluation = evaluate_method(item, "bicubic", 2, cfg)
    assert evaluation.sr.shape == (80, 80, 3)
    assert {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "lr_consistency", "sharpness"} <= set(evaluation.metrics)
    assert 20 < evaluation.metrics["psnr_y"] < 60 and 0 < evaluation.metrics["ssim_y"] <= 1
    assert "kernel_error" not in evaluation.metrics  # bicubic uses no kernel
    np.testing.assert_allclose(evaluation.true_kernel, item.load_kernels()[2])
    assert {"total", "load", "metrics"} <= set(evaluation.timings)
    assert evaluation.device and evaluation.host


def test_kernelgan_estimate_travels_in_the_evaluation_and_is_scored(div2krk, cfg):
    evaluation = evaluate_estimate(div2krk[0], 2, cfg)
    estimate = evaluation.estimate
    assert set(estimate.kernels) == {2, 4} and estimate.discriminator is not None
    assert {"estimate_raw_sum", "estimate_width", "estimate_failed"} <= set(evaluation.metrics)
    np.testing.assert_array_equal(evaluation.kernel, estimate.kernels[2])
    assert evaluation.sr is None and evaluation.history["kernelgan"]
    assert np.isfinite(evaluation.metrics["kernel_error"]) and np.isfinite(evaluation.metrics["kernel_psnr"])
    assert evaluation.metrics["its_per_sec"] > 0 and evaluation.timings["total"] > 0
    reused = evaluate_method(div2krk[0], "kernelgan-zssr", 2, cfg, estimate=estimate)  # reused, not trained again
    np.testing.assert_allclose(reused.kernel, estimate.kernels[2])
    assert "kernelgan" not in reused.history and "psnr_y" in reused.metrics


def test_an_oracle_on_a_bicubic_protocol_set_gets_the_bicubic_kernel_and_no_kernel_error(hr, tmp_path, cfg):
    assert METHODS["zssr-oracle"].needs_kernel
    item = discover(make_dataset(hr, tmp_path / "bicubic", protocol="bicubic", scales=(2,)), 2)[0]
    evaluation = evaluate_method(item, "zssr-oracle", 2, cfg)
    assert "psnr_y" in evaluation.metrics and "kernel_error" not in evaluation.metrics
    assert evaluation.true_kernel is None


def test_a_real_photo_gets_no_reference_metrics_only(hr, cfg):
    evaluation = evaluate_method(discover(hr / "baby.png", 2)[0], "bicubic", 2, cfg)
    assert set(evaluation.metrics) == {"lr_consistency", "sharpness"}


def test_a_corrupt_image_fails_with_its_path(tmp_path, cfg):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageError, match="broken.png.*not a readable image"):
        evaluate_method(discover(bad, 2)[0], "bicubic", 2, cfg)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_zssr_with_the_true_kernel_beats_bicubic_interpolation_on_every_seed(div2krk, device):
    """What the benchmark is for: a learned method, the quick preset, a 40x40 image degraded by an
    anisotropic DIV2KRK-protocol kernel. Measured: +6.1 to +6.8 dB PSNR-Y over five seeds (AMD EPYC,
    CPU); the margin asked here is 2 dB, on each of three seeds."""
    bird = next(item for item in div2krk if item.name == "bird")
    bicubic = evaluate_method(bird, "bicubic", 2, preset("quick")).metrics["psnr_y"]
    for seed in (0, 1, 2):
        cfg = apply_overrides(preset("quick"), [f"device={device}", f"seed={seed}"])
        learned = evaluate_method(bird, "zssr-oracle", 2, cfg).metrics["psnr_y"]
        assert learned > bicubic + 2.0, (seed, learned, bicubic)
