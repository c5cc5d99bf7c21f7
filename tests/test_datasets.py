"""Datasets: the generator's output is explained by its stored kernels, is deterministic, and is
read back by discover(); malformed layouts fail with errors that say what is missing where."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from zssrgan.cli import main
from zssrgan.datasets import DatasetError, discover, make_dataset
from zssrgan.io import load_image, load_kernel, save_image
from zssrgan.kernels import analytic_x4_kernel, center_of_mass
from zssrgan.resize import imresize

ROOT = Path(__file__).resolve().parents[1]
CLASSIC = ROOT / "benchmarks" / "data" / "classic"
EIGHT_BIT = 0.5 / 255 + 1e-6


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory) -> Path:
    """Three small HR images; one is not a multiple of 4 on either side."""
    src = tmp_path_factory.mktemp("hr")
    for name, (h, w) in {"baby": (64, 64), "bird": (64, 64), "butterfly": (66, 71)}.items():
        save_image(src / f"{name}.png", load_image(CLASSIC / f"{name}.png")[:h, :w])
    return src


@pytest.fixture(scope="module")
def div2krk(hr_folder, tmp_path_factory) -> Path:
    return make_dataset(hr_folder, tmp_path_factory.mktemp("sets") / "div2krk", "div2krk", (2, 4), seed=0)


def _degrade(img: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
    """The degradation model written out independently: correlate (reflect), keep every scale-th pixel."""
    return ndimage.correlate(img.astype(np.float64), kernel[..., None], mode="reflect")[::scale, ::scale]


def test_layout_keeps_source_names_and_crops_to_multiples_of_4(div2krk):
    names = ["baby", "bird", "butterfly"]
    for folder, pattern in {"gt": "img_{}_gt.png", "lr_x2": "im_{}.png", "lr_x4": "im_{}.png",
                            "gt_k_x2": "kernel_{}.mat", "gt_k_x4": "kernel_{}.mat",
                            "gt_k_x4/intermediate": "kernel_{}.mat"}.items():
        assert sorted(p.name for p in (div2krk / folder).glob("*.*")) == sorted(pattern.format(n) for n in names)
    assert load_image(div2krk / "gt" / "img_butterfly_gt.png").shape == (64, 68, 3)
    assert load_image(div2krk / "lr_x4" / "im_butterfly.png").shape == (16, 17, 3)


@pytest.mark.parametrize("scale", [2, 4])
def test_stored_lr_is_the_gt_degraded_by_the_stored_kernel(div2krk, scale):
    for item in discover(div2krk, scale):
        gt, lr = load_image(item.gt_path), load_image(item.lr_path)
        kernels = item.load_kernels()
        k = kernels[scale]
        # the 11x11 kernel centred for x2 (MATLAB geometry), and its 43x43 analytic x4 kernel
        assert k.shape == ((15, 15) if scale == 2 else (43, 43))
        assert k.min() >= 0 and k.sum() == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(center_of_mass(k), k.shape[0] // 2 + 0.5 * (scale - 1), atol=0.01)
        b = math.ceil((k.shape[0] // 2) / scale)
        np.testing.assert_allclose(lr[b:-b, b:-b], _degrade(gt, k, scale)[b:-b, b:-b], atol=EIGHT_BIT)
        if scale == 4:  # x4 = the x2 kernel applied twice
            np.testing.assert_allclose(analytic_x4_kernel(kernels[2], crop=False), k, atol=1e-12)
            twice = _degrade(_degrade(gt, kernels[2], 2), kernels[2], 2)
            np.testing.assert_allclose(lr[b:-b, b:-b], twice[b:-b, b:-b], atol=EIGHT_BIT)


def test_deterministic_under_the_seed(hr_folder, div2krk, tmp_path):
    again = make_dataset(hr_folder, tmp_path / "again", "div2krk", (2, 4), seed=0)
    other = make_dataset(hr_folder, tmp_path / "other", "div2krk", (4,), seed=1)
    for rel in ["lr_x2/im_baby.png", "lr_x4/im_butterfly.png"]:
        assert (again / rel).read_bytes() == (div2krk / rel).read_bytes()
    for rel in ["gt_k_x2/kernel_baby.mat", "gt_k_x4/kernel_bird.mat", "gt_k_x4/intermediate/kernel_bird.mat"]:
        np.testing.assert_array_equal(load_kernel(again / rel), load_kernel(div2krk / rel))
    assert not np.allclose(load_kernel(other / "gt_k_x4/kernel_bird.mat"), load_kernel(div2krk / "gt_k_x4/kernel_bird.mat"))
    assert not (other / "lr_x2").exists()
    kernels = [load_kernel(div2krk / f"gt_k_x2/kernel_{n}.mat") for n in ("baby", "bird")]
    assert not np.allclose(*kernels)  # each image gets its own kernel


def test_bicubic_protocol(hr_folder, tmp_path):
    out = make_dataset(hr_folder, tmp_path / "bic", "bicubic", (2,), seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["gt", "lr_x2"]
    gt, lr = load_image(out / "gt/img_bird_gt.png"), load_image(out / "lr_x2/im_bird.png")
    np.testing.assert_allclose(lr, np.clip(imresize(gt.astype(np.float64), scale=0.5), 0, 1), atol=EIGHT_BIT)
    (item,) = [i for i in discover(out, 2) if i.name == "bird"]
    assert item.gt_path is not None and item.kernel_paths == {} and item.load_kernels() is None
    with pytest.raises(DatasetError, match="lr_x4"):
        discover(out, 4)


def test_discover_layout_real_photos_and_single_file(div2krk):
    items = discover(div2krk, 4)
    assert [i.name for i in items] == ["baby", "bird", "butterfly"]
    assert items[0].gt_path == div2krk / "gt" / "img_baby_gt.png"
    assert items[0].kernel_paths == {2: div2krk / "gt_k_x4/intermediate/kernel_baby.mat",
                                     4: div2krk / "gt_k_x4/kernel_baby.mat"}
    assert set(discover(div2krk, 2)[0].kernel_paths) == {2}
    photos = discover(ROOT / "benchmarks/data/real_photos", 2)
    assert len(photos) == 9 and all(i.gt_path is None and i.load_kernels() is None for i in photos)
    (single,) = discover(CLASSIC / "baby.png", 4)
    assert single.name == "baby" and single.lr_path == CLASSIC / "baby.png" and single.gt_path is None


def test_malformed_layouts_are_rejected_clearly(div2krk, tmp_path):
    broken = Path(shutil.copytree(div2krk, tmp_path / "broken"))
    (broken / "gt/img_bird_gt.png").unlink()
    with pytest.raises(DatasetError, match=r"ground truth .*img_bird_gt"):
        discover(broken, 2)
    shutil.copy(div2krk / "gt/img_bird_gt.png", broken / "gt")
    (broken / "gt_k_x4/kernel_baby.mat").unlink()
    with pytest.raises(DatasetError, match=r"x4 kernel .*kernel_baby"):
        discover(broken, 4)
    with pytest.raises(DatasetError, match=r"no lr_x3/ .*found: lr_x2, lr_x4"):
        discover(broken, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        discover(tmp_path / "empty", 2)
    with pytest.raises(DatasetError, match="does not exist"):
        discover(tmp_path / "nowhere", 2)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not an image"):
        discover(tmp_path / "notes.txt", 2)


def test_make_dataset_refuses_unsafe_outputs(hr_folder, tmp_path):
    with pytest.raises(DatasetError, match="inside the source"):
        make_dataset(hr_folder, hr_folder / "out")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("x")
    with pytest.raises(DatasetError, match="other content.*thesis.tex"):
        make_dataset(hr_folder, tmp_path / "busy")
    with pytest.raises(DatasetError, match="scales"):
        make_dataset(hr_folder, tmp_path / "x3", "div2krk", (3,))
    with pytest.raises(DatasetError, match="protocol"):
        make_dataset(hr_folder, tmp_path / "p", "gaussian")


def test_cli_make_dataset(hr_folder, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["make-dataset", "--from", str(hr_folder), "--out", str(out), "--protocol", "div2krk",
                 "--scales", "4", "--seed", "3"]) == 0
    assert "3 images" in capsys.readouterr().out
    assert len(discover(out, 4)) == 3
    assert main(["make-dataset", "--from", str(hr_folder), "--out", str(hr_folder / "x")]) == 2
    assert "inside the source" in capsys.readouterr().err
