"""The spectral blur model behind ``auto``: what it reads on images it never saw, training, files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from zssrgan.cli import main
from zssrgan.config import ConfigError, apply_overrides, preset
from zssrgan.errors import InputError
from zssrgan.estimators import run_estimator
from zssrgan.io import load_image, save_image
from zssrgan.auto import principal_axes
from zssrgan.kernels import anisotropic_gaussian, kernel_width, matlab_bicubic_kernel, sample_div2krk_kernel
from zssrgan.protocols import centred_for
from zssrgan.resize import imresize
from zssrgan.blur_model import (N_FEATURES, BlurModelError, BlurTrainingConfig, load_blur_model,
                                 save_blur_model, spectral_features, train_blur_model)

CLASSIC = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "classic"
HELD_OUT = ("lenna", "face", "man")  # not among the shipped model's training images


def _lr(hr: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(imresize(hr, scale=0.5, kernel=kernel), 0, 1) * 255) / 255).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_shipped_model_tells_sharp_from_blurred_images_it_never_saw(seed):
    """Held-out images, 3 crops each: bicubic-downscaled ones read near the cubic kernel's 0.85 px,
    DIV2KRK-protocol blurs (drawn with ``seed``) read wider and in the order of their true widths."""
    model, rng = load_blur_model(), np.random.default_rng(seed)
    sharp, blurred, truth = [], [], []
    for name in HELD_OUT:
        hr = load_image(CLASSIC / f"{name}.png")
        for size in (240, 320, 400):
            top, left = (hr.shape[0] - size) // 2, (hr.shape[1] - size) // 2
            crop = hr[max(top, 0):max(top, 0) + size, max(left, 0):max(left, 0) + size]
            sharp.append(model.read(_lr(crop, matlab_bicubic_kernel(2))).width)
            kernel = centred_for(sample_div2krk_kernel(rng), 2)
            blurred.append(model.read(_lr(crop, kernel)).width)
            truth.append(kernel_width(kernel))
    assert max(sharp) < 1.1 and np.mean(sharp) < 1.0
    assert np.mean(blurred) > np.mean(sharp) + 0.4
    assert stats.spearmanr(blurred, truth)[0] > 0.5
    assert np.mean(np.abs(np.array(blurred) - truth)) < 0.3


def test_the_shipped_model_and_auto_find_the_axes_of_anisotropic_blurs_it_never_saw():
    """Held-out images, a blur 2.5 times longer than wide at 4 angles each: the model's angle follows
    it (within 20 degrees, mean error under 10), and so does auto's kernel where it reads the blur
    as clearly anisotropic (most cases); an isotropic blur reads near-round."""
    model = load_blur_model()
    cfg = apply_overrides(preset("quick"), ["estimator=auto"])
    errors, auto_errors = [], []
    for name in HELD_OUT:
        hr = load_image(CLASSIC / f"{name}.png")[:400, :400]
        for degrees in (0, 45, 100, 150):
            kernel = centred_for(anisotropic_gaussian(15, 6.25, 1.0, np.radians(degrees)), 2)
            lr = _lr(hr, kernel)
            errors.append(_angle_error(model.read(lr).angle, degrees))
            estimate = run_estimator(lr, 2, cfg)
            if estimate.diagnostics["aspect"] > 1.3:
                auto_errors.append(_angle_error(principal_axes(estimate.kernels[2])[2], degrees))
        assert model.read(_lr(hr, centred_for(anisotropic_gaussian(15, 2.5, 2.5, 0.0), 2))).aspect < 1.5
    assert max(errors) < 20 and np.mean(errors) < 10
    assert len(auto_errors) >= 9 and max(auto_errors) < 20 and np.mean(auto_errors) < 10


def _angle_error(radians: float, degrees: float) -> float:
    return abs((np.degrees(radians) - degrees + 90) % 180 - 90)


def test_training_checks_itself_image_by_image_and_round_trips(tmp_path):
    images = {name: load_image(CLASSIC / f"{name}.png")[:240, :240] for name in ("baby", "bird", "woman")}
    model = train_blur_model(images, BlurTrainingConfig(crops_per_image=3, min_crop=160, max_crop=240))
    assert model.info["cases"] == 3 * 3 * 3 and model.info["images"] == "baby,bird,woman"
    assert 0 < model.info["loo_div2krk_mean_abs_error"] < 1.0 and model.info["loo_div2krk_median_angle_error"] < 30
    path = tmp_path / "blur.npz"
    save_blur_model(path, model)
    loaded = load_blur_model(path)
    lr = _lr(images["baby"], matlab_bicubic_kernel(2))
    assert loaded.read(lr) == model.read(lr) and loaded.info == model.info


def test_loading_refuses_other_files_in_words(tmp_path):
    with pytest.raises(BlurModelError, match="no blur model at .*train one with `zssrgan prior train-blur`"):
        load_blur_model(tmp_path / "missing.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, mean=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BlurModelError, match="not a blur model file"):
        load_blur_model(pickled)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, mean=np.zeros(3), scale=np.ones(3), weights=np.zeros(3), bias=np.asarray(0.0), gains=np.ones(2))
    with pytest.raises(BlurModelError, match=f"not a blur model of this code's {N_FEATURES} spectral features"):
        load_blur_model(wrong)


def test_too_small_or_flat_an_image_and_an_unknown_source_are_refused_in_words():
    with pytest.raises(InputError, match="at least 64x64 px.*auto.width_from=cue"):
        spectral_features(np.zeros((40, 60, 3)))
    with pytest.raises(InputError, match="no low-band energy"):
        spectral_features(np.full((64, 64, 3), 0.5))
    small = _lr(load_image(CLASSIC / "baby.png")[:128, :128], matlab_bicubic_kernel(2))  # 64x64: the smallest
    assert np.isfinite(load_blur_model().read(small).width)
    with pytest.raises(ConfigError, match="auto.width_from: unknown source 'guess'; choose one of: model, cue"):
        apply_overrides(preset("quick"), ["estimator=auto", "auto.width_from=guess"])  # before any job runs
    cfg = apply_overrides(preset("quick"), ["estimator=auto", "auto.model_zero_below=1.5"])
    with pytest.raises(ConfigError, match="zero_below < shrink_below"):
        run_estimator(small, 2, cfg)


def test_train_blur_command(tmp_path, capsys):
    folder = tmp_path / "hr"
    for name in ("baby", "bird", "woman"):
        save_image(folder / f"{name}.png", load_image(CLASSIC / f"{name}.png")[:200, :200])
    out = tmp_path / "blur.npz"
    assert main(["prior", "train-blur", "--images", str(folder), "--exclude", "woman", "--crops", "2",
                 "--out", str(out)]) == 0
    assert "12 cases from 2 images" in capsys.readouterr().out
    assert load_blur_model(out).info["images"] == "baby,bird"
    # a misspelt image to keep aside is refused, not trained on
    assert main(["prior", "train-blur", "--images", str(folder), "--exclude", "wman", "--out", str(out)]) == 2
    assert "--exclude: no image named wman" in capsys.readouterr().err
    # too small an image is refused by the training itself (so from Python too), naming it
    with pytest.raises(InputError, match="HR images need at least 128x128 px .*: tiny"):
        train_blur_model({"baby": load_image(folder / "baby.png"), "tiny": np.zeros((100, 100, 3))})
    # two files of one name are refused, as make-dataset refuses them
    (folder / "baby.jpg").write_bytes((folder / "baby.png").read_bytes())  # refused before it is read
    assert main(["prior", "train-blur", "--images", str(folder), "--out", str(out)]) == 2
    assert "several images named baby (different extensions)" in capsys.readouterr().err
