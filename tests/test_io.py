"""Image and kernel files: every mode loads as float RGB, bad files get a clear error."""
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import tifffile
from PIL import Image

from zssrgan.io import MIN_SIDE, ImageError, load_image, load_kernel, save_image, save_kernel
from zssrgan.kernels import KernelError, sample_div2krk_kernel
from zssrgan.resize import imresize

DATA = Path(__file__).parent.parent / "benchmarks" / "data"
RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (20, 24, 3), dtype=np.uint8)
GRAY8 = RGB8[..., 0]


def write_png16(path, pixels):
    """A 16-bit colour PNG with every row filter type (Pillow cannot write one)."""
    height, width, channels = pixels.shape
    raw = pixels.astype(">u2").view(np.uint8).reshape(height, -1).astype(np.int32)
    bpp = 2 * channels
    rows = []
    for y in range(height):
        kind = y % 5
        current, prior = raw[y], raw[y - 1] if y else np.zeros_like(raw[0])
        left = np.concatenate([np.zeros(bpp, np.int32), current[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prior[:-bpp]])
        estimate = left + prior - upleft
        near_left = (abs(estimate - left) <= abs(estimate - prior)) & (abs(estimate - left) <= abs(estimate - upleft))
        paeth = np.where(near_left, left, np.where(abs(estimate - prior) <= abs(estimate - upleft), prior, upleft))
        prediction = [0, left, prior, (left + prior) // 2, paeth][kind]
        rows.append(bytes([kind]) + ((current - prediction) % 256).astype(np.uint8).tobytes())

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 16, {3: 2, 4: 6}[channels], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
                     + chunk(b"IEND", b""))


def pillow_cases(tmp_path):
    """(file, expected float RGB) for each 8-bit mode and format."""
    palette = Image.fromarray(RGB8).quantize(colors=16)
    palette_rgb = np.asarray(palette.convert("RGB")) / 255
    gray = np.repeat(GRAY8[..., None], 3, axis=2) / 255
    transparent = palette.copy()
    transparent.info["transparency"] = 0
    cases = {
        "rgb.png": (Image.fromarray(RGB8), RGB8 / 255),
        "rgba.png": (Image.fromarray(np.dstack([RGB8, GRAY8])), RGB8 / 255),
        "gray.png": (Image.fromarray(GRAY8), gray),
        "la.png": (Image.fromarray(np.dstack([GRAY8, RGB8[..., 1]]), "LA"), gray),
        "bilevel.png": (Image.fromarray(GRAY8 > 127), np.repeat((GRAY8 > 127)[..., None], 3, axis=2) * 1.0),
        "palette.png": (palette, palette_rgb),
        "palette_transparency.png": (transparent, palette_rgb),
        "palette.bmp": (palette, palette_rgb),
        "rgb.bmp": (Image.fromarray(RGB8), RGB8 / 255),
        "rgb.tif": (Image.fromarray(RGB8), RGB8 / 255),
        "gray.tif": (Image.fromarray(GRAY8), gray),
    }
    for name, (image, expected) in cases.items():
        image.save(tmp_path / name)
        yield tmp_path / name, expected


def test_every_8bit_mode_loads_as_float_rgb(tmp_path):
    for path, expected in pillow_cases(tmp_path):
        image = load_image(path)
        assert image.dtype == np.float32 and image.shape == (20, 24, 3), path.name
        np.testing.assert_allclose(image, expected, atol=1e-6, err_msg=path.name)


def test_jpeg_loads_close_to_its_source(tmp_path):
    smooth = np.repeat(np.linspace(0, 255, 32)[None, :, None], 32, axis=0).astype(np.uint8)
    for name, array in (("rgb.jpg", np.repeat(smooth, 3, axis=2)), ("gray.jpeg", smooth[..., 0])):
        Image.fromarray(array).save(tmp_path / name, quality=95)
        image = load_image(tmp_path / name)
        assert image.shape == (32, 32, 3)
        assert np.abs(image - smooth / 255).mean() < 0.01


def test_16bit_files_keep_their_precision(tmp_path):
    rgba16 = RNG.integers(0, 65536, (18, 21, 4), dtype=np.uint16)
    write_png16(tmp_path / "rgb16.png", rgba16[..., :3])
    write_png16(tmp_path / "rgba16.png", rgba16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgba16[..., :3])
    Image.fromarray(rgba16[..., 0]).save(tmp_path / "gray16.png")
    expected = rgba16[..., :3] / 65535
    for name in ("rgb16.png", "rgba16.png", "rgb16.tif"):
        np.testing.assert_allclose(load_image(tmp_path / name), expected, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(load_image(tmp_path / "gray16.png"), expected[..., :1].repeat(3, axis=2), atol=1e-7)


def test_real_palette_photos_load():
    photos = sorted((DATA / "real_photos").glob("*.png"))
    assert any(Image.open(path).mode == "P" for path in photos)
    for path in photos:
        image = load_image(path)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert image.std() > 0.05  # a real picture, not a map of palette indices


def test_reference_degradation_is_reproduced_through_files():
    """gt -> correlate with its kernel -> x2 subsampling -> 8-bit PNG gives the stored LR image."""
    root = DATA / "kernelgan_reference"
    hr = load_image(root / "gt" / "bird.png").astype(np.float64)
    lr = imresize(hr, scale=0.5, kernel=load_kernel(root / "gt_k_x2" / "bird.npy"))
    stored = load_image(root / "lr_x2" / "bird.png")
    np.testing.assert_allclose(np.round(np.clip(lr, 0, 1) * 255) / 255, stored, atol=1e-6)


def test_bad_image_files_get_a_clear_error(tmp_path):
    (tmp_path / "notes.png").write_text("these are notes, not pixels")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray(RGB8).save(tmp_path / "full.png")
    full = (tmp_path / "full.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(full[: len(full) // 2])
    Image.fromarray(RGB8[: MIN_SIDE - 1]).save(tmp_path / "tiny.png")
    cases = {"missing.png": "no such image file", "notes.png": "not a readable image", "empty.png": "empty",
             "truncated.png": "not a readable image", "tiny.png": f"at least {MIN_SIDE} pixels"}
    for name, problem in cases.items():
        with pytest.raises(ImageError, match=problem) as error:
            load_image(tmp_path / name)
        assert name in str(error.value)
    with pytest.raises(ImageError, match="no such image file"):
        load_image(tmp_path)  # a folder


def test_save_image_rounds_clips_and_creates_folders(tmp_path):
    image = np.array([[-0.5, 0.2 / 255, 0.6 / 255, 1.5]] * 16, dtype=np.float32)[:, :, None].repeat(3, axis=2)
    path = save_image(tmp_path / "a" / "b" / "out.png", image)
    saved = np.asarray(Image.open(path))
    np.testing.assert_array_equal(saved[0, :, 0], [0, 0, 1, 255])
    gray = RNG.random((16, 17))
    np.testing.assert_allclose(load_image(save_image(tmp_path / "gray.png", gray))[..., 1], gray, atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize("name, image, problem", [
    ("out.jpg", np.zeros((16, 16, 3)), "use a .png"),
    ("out.png", np.zeros((16, 16, 3), np.uint8), "float image"),
    ("out.png", np.zeros((16, 16, 4)), "float image"),
    ("out.png", np.full((16, 16, 3), np.nan), "NaN"),
])
def test_save_image_refuses_what_it_cannot_write_faithfully(tmp_path, name, image, problem):
    with pytest.raises(ImageError, match=problem):
        save_image(tmp_path / name, image)


@pytest.mark.parametrize("suffix", [".npy", ".mat"])
def test_kernel_round_trip(tmp_path, suffix):
    kernel = sample_div2krk_kernel(np.random.default_rng(1))
    path = save_kernel(tmp_path / "nested" / f"kernel{suffix}", kernel)
    np.testing.assert_array_equal(load_kernel(path), kernel)


def test_bad_kernel_files_get_a_clear_error(tmp_path):
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "flat.npy", np.ones(5))
    scipy.io.savemat(tmp_path / "other.mat", {"K": np.ones((3, 3))})
    (tmp_path / "garbage.mat").write_text("not a MATLAB file")
    cases = {"kernel.txt": "unknown kernel file type", "missing.npy": "no such kernel file",
             "pickled.npy": "not a readable .npy", "flat.npy": "2-D", "other.mat": "no variable 'Kernel'.*found: K",
             "garbage.mat": "not a readable .mat"}
    for name, problem in cases.items():
        with pytest.raises(KernelError, match=problem) as error:
            load_kernel(tmp_path / name)
        assert name in str(error.value)
    with pytest.raises(KernelError, match="unknown kernel file type"):
        save_kernel(tmp_path / "kernel.csv", np.ones((3, 3)))
