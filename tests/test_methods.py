"""The methods table end to end on a tiny image, its errors, and ``zssrgan sr``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zssrgan.cli import main
from zssrgan.config import apply_overrides, preset
from zssrgan.io import load_image, save_image
from zssrgan.kernels import analytic_x4_kernel, matlab_bicubic_kernel, sample_div2krk_kernel
from zssrgan.methods import METHODS, MethodError, run_method
from zssrgan.resize import imresize
from zssrgan.train.kernelgan import estimate_kernel

CLASSIC = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "classic"
TINY = ["kernelgan.iters=20", "kernelgan.n_crop_positions=20", "kernelgan.input_crop=32", "kernelgan.shave=0",
        "kernelgan.d_channels=16", "kernelgan.g_channels=16", "zssr.iters=6", "zssr.crop=24",
        "zssr.channels=16", "zssr.test_every=2", "device=cpu", "strict_estimates=false"]
COMPUTES_ESTIMATE = {"kernelgan-zssr", "zssrgan-fixed", "zssrgan-serial", "zssrgan-e2e"}




@pytest.fixture(scope="module")
def tiny():
    """A 40x40 LR image (an 80x80 crop degraded by a DIV2KRK kernel), its kernel, a tiny config."""
    hr = load_image(CLASSIC / "butterfly.png")[60:140, 60:140]
    kernel = sample_div2krk_kernel(np.random.default_rng(0))
    lr = np.clip(imresize(hr, scale=0.5, kernel=kernel), 0.0, 1.0).astype(np.float32)
    return lr, kernel, apply_overrides(preset("quick"), TINY)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_end_to_end_at_x2(tiny, name):
    lr, kernel, cfg = tiny
    result = run_method(name, lr, 2, cfg, kernels={2: kernel})
    assert result.sr.shape == (80, 80, 3) and result.sr.dtype == np.float32
    assert 0.0 <= result.sr.min() and result.sr.max() <= 1.0
    assert result.timings["total"] > 0
    assert ("estimate" in result.timings) == (name in COMPUTES_ESTIMATE - {"zssrgan-e2e"})
    assert (result.estimate is not None) == (name in COMPUTES_ESTIMATE)
    if name == "bicubic":
        assert result.kernel is None
        return
    expected = {"zssr": matlab_bicubic_kernel(2), "zssr-oracle": kernel}.get(name)
    if expected is None:
        expected = result.estimate.kernels[2]
    np.testing.assert_array_equal(result.kernel, expected)
    assert result.history["zssr_x2"]
    adversarial = name.startswith("zssrgan")
    assert any("loss_adv" in row for row in result.history["zssr_x2"]) == adversarial
    assert ("disc_x2" in result.history) == (name in {"zssrgan-serial", "zssrgan-e2e"})


def test_a_shared_estimate_is_reused_not_recomputed(tiny):
    lr, _, cfg = tiny
    estimate = estimate_kernel(lr, cfg=cfg)
    for name in ("kernelgan-zssr", "zssrgan-fixed"):
        result = run_method(name, lr, 2, cfg, estimate=estimate)
        assert "estimate" not in result.timings and result.estimate is None
        assert "kernelgan" not in result.history
        np.testing.assert_array_equal(result.kernel, estimate.kernels[2])


def test_oracle_at_x4_runs_gradually_with_the_analytic_kernel_of_the_true_x2_kernel(tiny):
    lr, kernel, cfg = tiny
    result = run_method("zssr-oracle", lr, 4, cfg, kernels={2: kernel})
    assert result.sr.shape == (160, 160, 3)
    np.testing.assert_allclose(result.kernel, analytic_x4_kernel(kernel))
    assert result.history["zssr_x2"] and result.history["zssr_x4"]


@pytest.mark.parametrize("name, scale, kernels, message", [
    ("zssr-gan", 2, None, "unknown method 'zssr-gan'; choose one of: bicubic, zssr, "),
    ("zssr", 3, None, "scale must be one of 2, 4, got 3"),
    ("zssr-oracle", 2, None, "needs the true x2 kernel; kernels given: none; methods that do not: bicubic"),
    ("zssr-oracle", 4, {4: np.ones((3, 3)) / 9}, r"x4 runs gradually.*kernels given: x4"),
])
def test_bad_requests_are_refused_with_the_choices(tiny, name, scale, kernels, message):
    with pytest.raises(MethodError, match=message):
        run_method(name, tiny[0], scale, tiny[2], kernels=kernels)


# ---- zssrgan sr ------------------------------------------------------------------------------------

def _sr(tmp_path, *extra):
    return main(["sr", str(tmp_path / "lr.png"), "--out", str(tmp_path / "sr.png"), "--preset", "quick",
                 *[a for kv in TINY for a in ("--set", kv)], *extra])


@pytest.fixture()
def lr_file(tmp_path, tiny):
    save_image(tmp_path / "lr.png", tiny[0])
    np.save(tmp_path / "k.npy", tiny[1])
    return tmp_path


def test_sr_writes_the_image_and_prints_timings(lr_file, capsys):
    assert _sr(lr_file, "--method", "zssr-oracle", "--kernel", str(lr_file / "k.npy")) == 0
    assert load_image(lr_file / "sr.png").shape == (80, 80, 3)
    out = capsys.readouterr().out
    assert "zssr-oracle x2: 40x40 -> 80x80" in out and "total" in out


def test_sr_warns_on_cpu_with_the_paper_preset(lr_file, capsys):
    assert main(["sr", str(lr_file / "lr.png"), "--out", str(lr_file / "sr.png"), "--method", "bicubic"]) == 0
    assert "warning" not in capsys.readouterr().err  # interpolation is instant
    assert main(["sr", str(lr_file / "lr.png"), "--out", str(lr_file / "sr.png"), "--method", "zssr",
                 "--device", "cpu", "--set", "zssr.iters=1", "--set", "zssr.crop=24", "--set", "zssr.channels=8"]) == 0
    assert "--preset quick" in capsys.readouterr().err


def test_sr_refuses_a_file_that_is_not_a_kernel(lr_file, capsys):
    np.save(lr_file / "bad.npy", np.ones((4, 4, 3)))
    assert _sr(lr_file, "--method", "zssr-oracle", "--kernel", str(lr_file / "bad.npy")) == 2
    err = capsys.readouterr().err
    assert "bad.npy" in err and "2-D" in err


def test_sr_oracle_at_x4_asks_for_the_x2_kernel(lr_file, capsys):
    assert _sr(lr_file, "--method", "zssr-oracle", "--scale", "4", "--kernel", str(lr_file / "k.npy")) == 2
    assert "--kernel-x2" in capsys.readouterr().err


def test_sr_refuses_unknown_methods_and_scales(lr_file, capsys):
    assert _sr(lr_file, "--method", "nope") == 2
    assert "zssrgan sr: error: unknown method 'nope'; choose one of: bicubic, zssr" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        _sr(lr_file, "--method", "zssr", "--scale", "3")
    assert exit_.value.code == 2 and "invalid choice: 3" in capsys.readouterr().err
