"""Datasets: the generator's output is explained by its stored kernels, is deterministic, and is
read back by discover(); malformed layouts fail with errors that say what is missing where."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from zssrgan.cli import main
from zssrgan.datasets import DatasetError, discover, make_dataset
from zssrgan.io import ImageError, load_image, load_kernel, save_image
from zssrgan.kernels import analytic_x4_kernel, center_of_mass, matlab_bicubic_kernel
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


def _assert_explained(item, scale: int, noise: float = 0.0) -> np.ndarray:
    """The item's LR image is its ground truth degraded by its stored kernel, centred for the scale
    (MATLAB geometry), up to 8-bit rounding away from a border of the kernel's size; returns the
    residual there (the noise, when there is some). A blur is non-negative; gaussian8's kernel
    includes bicubic downscaling, whose cubic has negative lobes."""
    gt, lr = load_image(item.gt_path), load_image(item.lr_path)
    k = item.load_kernels()[scale]
    assert k.sum() == pytest.approx(1.0, abs=1e-4) and (item.protocol == "gaussian8" or k.min() >= 0)
    np.testing.assert_allclose(center_of_mass(k), k.shape[0] // 2 + 0.5 * (scale - 1), atol=0.01)
    b = math.ceil((k.shape[0] // 2) / scale)
    clean = _degrade(gt, k, scale)[b:-b, b:-b]
    if not noise:
        np.testing.assert_allclose(lr[b:-b, b:-b], clean, atol=EIGHT_BIT)
    return (lr[b:-b, b:-b] - clean)[(clean > 4 * noise / 255) & (clean < 1 - 4 * noise / 255)]


@pytest.mark.parametrize("scale", [2, 4])
def test_stored_lr_is_the_gt_degraded_by_the_stored_kernel(div2krk, scale):
    for item in discover(div2krk, scale):
        _assert_explained(item, scale)
        kernels = item.load_kernels()
        # the 11x11 kernel centred for x2 (MATLAB geometry), and its 43x43 analytic x4 kernel
        assert kernels[scale].shape == ((15, 15) if scale == 2 else (43, 43))
        if scale == 4:  # x4 = the x2 kernel applied twice
            np.testing.assert_allclose(analytic_x4_kernel(kernels[2], crop=False), kernels[4], atol=1e-12)
            gt, lr = load_image(item.gt_path), load_image(item.lr_path)
            twice = _degrade(_degrade(gt, kernels[2], 2), kernels[2], 2)
            np.testing.assert_allclose(lr[5:-5, 5:-5], twice[5:-5, 5:-5], atol=EIGHT_BIT)


@pytest.fixture(scope="module")
def gaussian8(hr_folder, tmp_path_factory) -> Path:
    return make_dataset(hr_folder, tmp_path_factory.mktemp("sets") / "gaussian8", "gaussian8", (2, 4), seed=0)


@pytest.mark.parametrize("scale", [2, 4])
def test_gaussian8_degrades_every_image_at_8_widths_named_in_its_files(gaussian8, scale):
    low, high = {2: (0.8, 1.6), 4: (1.8, 3.2)}[scale]
    items = discover(gaussian8, scale)
    assert len(items) == 3 * 8 and all(i.protocol == "gaussian8" and i.noise == 0 for i in items)
    for name in ("baby", "bird", "butterfly"):
        mine = [i for i in items if i.gt_path.name == f"img_{name}_gt.png"]
        widths = [i.kernel_width for i in mine]
        np.testing.assert_allclose(widths, np.linspace(low, high, 8))  # 8 distinct, evenly spaced
        for item in mine:
            assert item.name == f"{name}_sig{item.kernel_width:.2f}"
            assert item.lr_path.name == f"im_{item.name}.png"
            assert item.kernel_paths[scale].name == f"kernel_{item.name}.mat"
            _assert_explained(item, scale)
    # the stored kernel is the Gaussian (21x21) then MATLAB's bicubic: its variance is theirs summed
    cubic = matlab_bicubic_kernel(scale)
    for item in mine:
        k = item.load_kernels()[scale]
        assert k.shape[0] == 21 + cubic.shape[0] - 1
        width = math.sqrt(_variance(k) - _variance(cubic))
        assert width == pytest.approx(item.kernel_width, rel=0.03)  # 21 taps cut the widest a little
    # at x4 no x2 kernel exists, so the (gradual) oracle cannot run there
    assert (items[0].true_kernel_gap(scale) is None) == (scale == 2)


def _variance(kernel: np.ndarray) -> float:
    """The kernel's variance along its rows."""
    rows = kernel.sum(axis=1)
    taps = np.arange(len(rows))
    return float(rows @ taps**2 - (rows @ taps) ** 2)


def test_fkp_aniso_draws_kernels_in_the_published_ranges(hr_folder, tmp_path):
    out = make_dataset(hr_folder, tmp_path / "fkp", "fkp-aniso", (2, 4), seed=0)
    manifest = json.loads((out / "manifest.json").read_text())
    for scale in (2, 4):
        low, high = 0.175 * scale, min(2.5 * scale, 10)
        for item in discover(out, scale):
            assert item.protocol == "fkp-aniso" and item.kernel_width is None
            _assert_explained(item, scale)
            entry = manifest["items"][str(scale)][item.name]
            assert all(low <= v <= high for v in entry["variances"]) and 0 <= entry["angle"] < math.pi
            # the published size, min(4s + 3, 21), padded on each side for centring
            size = min(4 * scale + 3, 21)
            k = item.load_kernels()[scale]
            assert k.shape[0] > size and (k.shape[0] - size) % 2 == 0
            if max(entry["variances"]) < 1.5:  # not cut by the kernel's border: its covariance is drawn
                covariance = np.cov(np.indices(k.shape).reshape(2, -1), aweights=k.ravel(), bias=True)
                np.testing.assert_allclose(sorted(np.linalg.eigvalsh(covariance)), sorted(entry["variances"]),
                                           rtol=0.1)


def test_the_fkp_variances_cover_their_range_over_many_images(tmp_path):
    """Statistically, over 40 images: uniform in the range, both ends reached within a quarter of it."""
    rng = np.random.default_rng(0)
    for i in range(40):
        save_image(tmp_path / "hr" / f"im{i}.png", rng.random((16, 16, 3)))
    out = make_dataset(tmp_path / "hr", tmp_path / "fkp", "fkp-aniso", (2,), seed=0)
    entries = json.loads((out / "manifest.json").read_text())["items"]["2"].values()
    variances = np.array([e["variances"] for e in entries]).ravel()
    angles = np.array([e["angle"] for e in entries])
    assert variances.min() >= 0.35 and variances.max() <= 5.0
    assert variances.min() < 0.35 + 0.25 * 4.65 and variances.max() > 5.0 - 0.25 * 4.65
    assert angles.min() < math.pi / 4 and angles.max() > 3 * math.pi / 4


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


def test_fkp_kernels_and_noise_are_seeded(hr_folder, tmp_path):
    made = {seed: make_dataset(hr_folder, tmp_path / f"{seed}", "fkp-aniso", (2,), seed=seed % 2, noise=5.0)
            for seed in (0, 1, 2)}  # seeds 0, 1 and 0 again
    lr, kernel = "lr_x2/im_bird.png", "gt_k_x2/kernel_bird.mat"
    assert (made[0] / lr).read_bytes() == (made[2] / lr).read_bytes()
    np.testing.assert_array_equal(load_kernel(made[0] / kernel), load_kernel(made[2] / kernel))
    assert not np.allclose(load_kernel(made[0] / kernel), load_kernel(made[1] / kernel))


def test_bicubic_protocol(hr_folder, tmp_path):
    out = make_dataset(hr_folder, tmp_path / "bic", "bicubic", (2,), seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["gt", "lr_x2", "manifest.json"]
    gt, lr = load_image(out / "gt/img_bird_gt.png"), load_image(out / "lr_x2/im_bird.png")
    np.testing.assert_allclose(lr, np.clip(imresize(gt.astype(np.float64), scale=0.5), 0, 1), atol=EIGHT_BIT)
    (item,) = [i for i in discover(out, 2) if i.name == "bird"]
    assert item.gt_path is not None and item.kernel_paths == {} and item.load_kernels() is None
    assert item.protocol == "bicubic" and item.kernel_width is None and item.true_kernel_gap(2) is None
    with pytest.raises(DatasetError, match="lr_x4"):
        discover(out, 4)


@pytest.mark.parametrize("protocol", ["bicubic", "gaussian8"])
def test_noise_has_the_requested_std_in_8_bit_levels(hr_folder, tmp_path, protocol):
    """Over 5 seeds: the residual after re-degrading the ground truth has std sqrt(10^2 + 1/12)
    levels (the noise and the 8-bit rounding), mean 0, and another seed draws other noise."""
    residuals = []
    for seed in range(5):
        out = make_dataset(hr_folder, tmp_path / f"s{seed}", protocol, (2,), seed=seed, noise=10.0)
        items = discover(out, 2)
        assert all(i.noise == 10.0 for i in items)
        if protocol == "gaussian8":
            residuals.append(np.concatenate([_assert_explained(i, 2, noise=10.0) for i in items]))
            continue
        lr = np.concatenate([load_image(i.lr_path)[2:-2, 2:-2].ravel() for i in items])
        clean = np.concatenate([imresize(load_image(i.gt_path).astype(np.float64), scale=0.5)[2:-2, 2:-2].ravel()
                                for i in items])
        residuals.append((lr - clean)[(clean > 40 / 255) & (clean < 1 - 40 / 255)])  # 4 std from clipping
    stds = [r.std() * 255 for r in residuals]
    assert sum(abs(s - math.sqrt(100 + 1 / 12)) < 0.5 for s in stds) >= 4, stds
    assert sum(abs(r.mean() * 255) < 0.5 for r in residuals) >= 4
    assert not np.allclose(residuals[0][:100], residuals[1][:100])


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
    with pytest.raises(DatasetError, match=r"scales \(8,\) not supported by the gaussian8 protocol"):
        make_dataset(hr_folder, tmp_path / "g", "gaussian8", (8,))
    with pytest.raises(DatasetError, match="noise must be a standard deviation in 8-bit levels"):
        make_dataset(hr_folder, tmp_path / "n", "bicubic", (2,), noise=-1)


def test_a_damaged_manifest_is_refused_clearly(div2krk, tmp_path):
    copy = Path(shutil.copytree(div2krk, tmp_path / "copy"))
    manifest = json.loads((copy / "manifest.json").read_text())
    assert [i.protocol for i in discover(copy, 2)] == ["div2krk"] * 3
    # an image added later is read as a plain layout item: nothing claimed about how it was made
    shutil.copy(copy / "lr_x2/im_bird.png", copy / "lr_x2/im_added.png")
    shutil.copy(copy / "gt/img_bird_gt.png", copy / "gt/img_added_gt.png")
    shutil.copy(copy / "gt_k_x2/kernel_bird.mat", copy / "gt_k_x2/kernel_added.mat")
    added = {i.name: i for i in discover(copy, 2)}["added"]
    assert added.protocol is None and added.gt_path.name == "img_added_gt.png"
    manifest["items"]["2"]["bird"] = {"image": "../../../etc/passwd"}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="not a plain name"):
        discover(copy, 2)
    (copy / "manifest.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="not a zssrgan dataset manifest"):
        discover(copy, 2)


def test_cli_make_dataset(hr_folder, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["make-dataset", "--from", str(hr_folder), "--out", str(out), "--protocol", "div2krk",
                 "--scales", "4", "--seed", "3"]) == 0
    assert "3 images" in capsys.readouterr().out
    assert len(discover(out, 4)) == 3
    assert main(["make-dataset", "--from", str(hr_folder), "--out", str(tmp_path / "g8"), "--protocol", "gaussian8",
                 "--scales", "2", "--noise", "5"]) == 0
    assert "24 images at x2: gaussian8 protocol, noise std 5/255" in capsys.readouterr().out
    assert main(["make-dataset", "--from", str(hr_folder), "--out", str(tmp_path / "n"), "--noise", "nan"]) == 2
    assert "noise must be a standard deviation" in capsys.readouterr().err
    assert main(["make-dataset", "--from", str(hr_folder), "--out", str(hr_folder / "x")]) == 2
    assert "inside the source" in capsys.readouterr().err


def test_a_dataset_made_again_in_its_folder_replaces_the_old_one_and_foreign_ones_are_left_alone(hr_folder, tmp_path):
    out = make_dataset(hr_folder, tmp_path / "ds", "div2krk", (2,), seed=0)
    assert list((out / "gt_k_x2").glob("*.mat"))
    make_dataset(hr_folder, out, "bicubic", (2,), seed=0)  # no kernel files: none of the old ones may stay
    assert not (out / "gt_k_x2").exists()
    assert all(item.kernel_paths == {} for item in discover(out, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # nothing left beside it
    assert sorted(p.name for p in out.iterdir()) == ["gt", "lr_x2", "manifest.json"]  # nor inside
    small = tmp_path / "small"
    shutil.copytree(hr_folder, small)
    (small / "zz_broken.png").write_bytes(b"not a PNG")  # fails after the others are written
    with pytest.raises(ImageError, match="zz_broken.png"):
        make_dataset(small, out, "div2krk", (2,), seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["gt", "lr_x2", "manifest.json"]  # the old one, whole
    assert discover(out, 2)[0].protocol == "bicubic"
    with pytest.raises(DatasetError, match="the source folder .* is inside the output folder"):
        make_dataset(out / "gt", out, "bicubic", (2,))  # made again from its own ground truth
    foreign = tmp_path / "downloaded"
    (foreign / "lr_x2").mkdir(parents=True)
    (foreign / "lr_x2" / "im_1.png").write_bytes(b"theirs")
    with pytest.raises(DatasetError, match="holds a dataset that `zssrgan make-dataset` did not make"):
        make_dataset(hr_folder, foreign, "bicubic", (2,))
    assert (foreign / "lr_x2" / "im_1.png").read_bytes() == b"theirs"
