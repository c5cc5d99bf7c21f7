"""imresize against the reference vectors, MATLAB's conventions, and the torch twin."""
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from zssrgan import resize
from zssrgan.resize import cubic, imresize, imresize_torch, resize_weights

VECTORS = np.load(Path(__file__).parent / "data" / "imresize_vectors.npz", allow_pickle=False)
CASES = sorted({key.split("__")[0] for key in VECTORS.files if key.endswith("__input")})
CUBIC_CASES = [case for case in CASES if case.startswith("cubic")]


def case_arguments(case):
    arguments = {}
    for name, cast in (("scale", float), ("output_shape", tuple), ("antialiasing", bool), ("kernel", np.asarray)):
        if f"{case}__{name}" in VECTORS.files:
            arguments[name] = cast(VECTORS[f"{case}__{name}"])
    assert VECTORS.get(f"{case}__kernel_shift", 0) == 0  # kernels are used as given
    return arguments


def published_port_weights(first_axis_scale):
    """The Python imresize port that generated the cubic vectors, quirks included:
    1. taps left of the first pixel get weight 0 and the rest is renormalised (its negative
       indices wrap around through an unsigned cast, which zeroes their cubic weight), where
       MATLAB mirrors them; the right border is mirrored as in MATLAB;
    2. antialiasing is switched on or off for both axes by the first axis's scale alone, so an
       upscaled axis next to a downscaled one gets a narrowed kernel.
    Used to show the vectors differ from this project's MATLAB-faithful weights only there."""
    def weights(in_len, out_len, scale, antialiasing):
        widen = antialiasing and first_axis_scale < 1
        width = 4.0 / scale if widen else 4.0
        centres = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
        indices = np.floor(centres - width / 2)[:, None] + np.arange(int(np.ceil(width)) + 2) - 1
        distance = centres[:, None] - indices - 1
        taps = scale * cubic(scale * distance) if widen else cubic(distance)
        taps = taps * (indices >= 0)
        return taps / taps.sum(axis=1, keepdims=True), resize.mirror_indices(np.maximum(indices, 0).astype(int), in_len)
    return weights


@pytest.mark.parametrize("case", CASES)
def test_every_vector_case_is_reproduced_exactly_under_the_published_border_rule(case, monkeypatch):
    arguments = case_arguments(case)
    image = VECTORS[f"{case}__input"]
    if "kernel" not in arguments:
        first_scale = arguments.get("scale", (arguments.get("output_shape") or (0,))[0] / image.shape[0])
        monkeypatch.setattr(resize, "resize_weights", published_port_weights(first_scale))
    np.testing.assert_allclose(imresize(image, **arguments), VECTORS[f"{case}__expected"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", [c for c in CUBIC_CASES if f"{c}__scale" in VECTORS.files])
def test_matlab_weights_match_vectors_away_from_the_top_left_border(case):
    """Same-scale cases: the only difference is quirk 1, confined to the first few output
    pixels whose cubic support reaches left of pixel 0."""
    arguments = case_arguments(case)
    margin = int(np.ceil(1.5 * max(arguments["scale"], 1.0))) + 1
    ours = imresize(VECTORS[f"{case}__input"], **arguments)
    expected = VECTORS[f"{case}__expected"]
    np.testing.assert_allclose(ours[margin:, margin:], expected[margin:, margin:], rtol=0, atol=1e-6)


def test_matlab_border_is_symmetric_mirroring():
    """Upscaling a ramp mirrored at both ends: the first and last outputs see the same pattern."""
    ramp = np.arange(8.0)[:, None]
    up = imresize(ramp, scale=(2.0, 1.0))[:, 0]
    np.testing.assert_allclose(up[:3] - ramp[0, 0], -(up[-3:][::-1] - ramp[-1, 0]), atol=1e-12)


def test_mixed_up_and_down_scales_antialias_each_axis_by_its_own_scale():
    image = VECTORS["cubic_outshape_17x50__input"]
    both = imresize(image, output_shape=(17, 50))
    rows_then_cols = imresize(imresize(image, output_shape=(17, 36)), output_shape=(17, 50))
    np.testing.assert_allclose(both, rows_then_cols, atol=1e-12)


def test_numeric_kernel_is_scipy_correlate_then_subsample():
    """Even-sized kernels included: the origin is tap side // 2, as scipy's."""
    rng = np.random.default_rng(4)
    image, kernel = rng.random((21, 18, 3)), rng.random((6, 5))
    blurred = ndimage.correlate(image, kernel[..., None], mode="reflect")
    rows = np.round(np.linspace(0, 21 - 21 / 11, 11)).astype(int)
    cols = np.round(np.linspace(0, 18 - 2, 9)).astype(int)
    ours = imresize(image, output_shape=(11, 9), kernel=kernel)
    np.testing.assert_allclose(ours, blurred[np.ix_(rows, cols)], atol=1e-12)


def test_weights_are_normalised_and_indices_in_range():
    for in_len, out_len, scale in ((23, 46, 2.0), (40, 10, 0.25), (7, 3, 3 / 7), (5, 5, 1.0)):
        weights, indices = resize_weights(in_len, out_len, scale, True)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
        assert indices.min() >= 0 and indices.max() < in_len and weights.shape == indices.shape


def test_output_shape_from_scale_rounds_up_without_float_noise():
    assert imresize(np.zeros((30, 31)), scale=1 / 3).shape == (10, 11)
    assert imresize(np.zeros((23, 31, 3)), scale=0.5).shape == (12, 16, 3)
    image = np.random.default_rng(0).random((9, 7, 3))
    np.testing.assert_array_equal(imresize(image, scale=1.0), image)


def test_dtype_is_kept_for_float32_and_promoted_otherwise():
    assert imresize(np.zeros((8, 8), np.float32), scale=2).dtype == np.float32
    assert imresize(np.zeros((8, 8), np.uint8), scale=2).dtype == np.float64


def to_nchw(image):
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


@pytest.mark.parametrize("case", CASES)
def test_torch_agrees_with_numpy(case):
    arguments = case_arguments(case)
    image = VECTORS[f"{case}__input"]
    expected = imresize(image, **arguments)
    ours = imresize_torch(to_nchw(image), **arguments)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_torch_float32_even_kernel_and_gradients():
    rng = np.random.default_rng(3)
    image = rng.random((21, 18, 3))
    kernel = rng.random((6, 5))
    kernel /= kernel.sum()
    expected = imresize(image, output_shape=(11, 9), kernel=kernel)
    kernel_t = torch.tensor(kernel, requires_grad=True)
    x = to_nchw(image).requires_grad_(True)
    out = imresize_torch(x, output_shape=(11, 9), kernel=kernel_t)
    np.testing.assert_allclose(out[0].permute(1, 2, 0).detach().numpy(), expected, atol=1e-12)
    out.sum().backward()
    assert kernel_t.grad is not None and x.grad is not None
    evenly_spaced = imresize_torch(to_nchw(image[:20]), scale=0.5, kernel=kernel)  # the strided path
    np.testing.assert_allclose(evenly_spaced[0].permute(1, 2, 0).numpy(),
                               imresize(image[:20], scale=0.5, kernel=kernel), atol=1e-12)
    out32 = imresize_torch(to_nchw(image).float(), scale=1.7)
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32[0].permute(1, 2, 0).numpy(), imresize(image, scale=1.7), atol=1e-5)


@pytest.mark.parametrize("arguments, message", [
    (dict(), "exactly one"),
    (dict(scale=2, output_shape=(4, 4)), "exactly one"),
    (dict(scale=0), "positive"),
    (dict(scale=float("nan")), "positive"),
    (dict(scale=(1, 2, 3)), "pair"),
    (dict(output_shape=(4,)), "two positive integers"),
    (dict(output_shape=(0, 4)), "two positive integers"),
    (dict(scale=0.5, kernel=np.ones(3)), "2-D"),
    (dict(scale=2, kernel=np.ones((3, 3))), "only downscale"),
])
def test_bad_arguments_get_a_clear_error(arguments, message):
    with pytest.raises(ValueError, match=message):
        imresize(np.zeros((8, 8, 3)), **arguments)
    with pytest.raises(ValueError, match=message):
        imresize_torch(torch.zeros(1, 3, 8, 8), **arguments)


def test_bad_images_get_a_clear_error():
    with pytest.raises(ValueError, match="HxW"):
        imresize(np.zeros((1, 8, 8, 3)), scale=2)
    with pytest.raises(ValueError, match="empty"):
        imresize(np.zeros((0, 8)), scale=2)
    with pytest.raises(ValueError, match="NCHW"):
        imresize_torch(torch.zeros(3, 8, 8), scale=2)


@pytest.mark.cuda
def test_torch_on_cuda_agrees_with_cpu():
    image = torch.rand(1, 3, 40, 36, dtype=torch.float64)
    kernel = np.full((5, 5), 1 / 25)
    for arguments in (dict(scale=2.0), dict(scale=0.5), dict(scale=0.5, kernel=kernel)):
        on_cuda = imresize_torch(image.cuda(), **arguments)
        assert on_cuda.device.type == "cuda"
        torch.testing.assert_close(on_cuda.cpu(), imresize_torch(image, **arguments))
