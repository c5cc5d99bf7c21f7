"""Images and kernels in and out, with errors that name the file and the problem.

Images load as HxWx3 float32 in [0, 1] whatever the file's mode (grayscale, palette, RGB, RGBA,
LA, 8 or 16 bits per channel); 16-bit files keep their precision. Pillow decodes everything except
16-bit colour, which it truncates to 8 bits: 16-bit colour TIFFs go through tifffile, 16-bit colour
PNGs through ``read_png16`` below.
"""
from __future__ import annotations

import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Union

import numpy as np
import scipy.io
import tifffile
from PIL import Image

from .errors import InputError, UserError
from .kernels import KernelError, validate_kernel

PathLike = Union[str, Path]
MIN_SIDE = 16  # pixels; smaller images cannot be cropped or downscaled meaningfully
KERNEL_FORMATS = (".npy", ".mat")
MAT_VARIABLE = "Kernel"  # the variable name of the published DIV2KRK kernel files


class ImageError(UserError, ValueError):
    """A file that cannot be used as an image, or an array that cannot be saved as one."""


def load_image(path: PathLike) -> np.ndarray:
    """Read PNG/JPEG/TIFF/BMP as HxWx3 float32 in [0, 1]; alpha is dropped, grayscale is
    replicated, palettes are expanded. Raises ImageError for a missing, empty or unreadable file
    and for images smaller than MIN_SIDE (16) pixels on a side."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's palette-transparency advice; the result is the same
            with Image.open(path) as image:
                check_size(path, image.size)
                image = to_rgb(path, image)
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error, Image.DecompressionBombError) as error:
        if isinstance(error, ImageError):
            raise
        raise ImageError(f"{path}: not a readable image ({error})") from None
    return image


def check_size(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{path}: the image is {width}x{height} pixels; at least {MIN_SIDE} pixels "
                         "per side are needed")


def to_rgb(path: Path, image: Image.Image) -> np.ndarray:
    """Decode an opened image into HxWx3 float32 in [0, 1]."""
    if is_16bit_colour(image):
        pixels = tifffile.imread(path) if image.format == "TIFF" else read_png16(path)
        return (pixels[..., :3] / np.float32(65535)).astype(np.float32)
    if image.mode.startswith("I;16") or image.mode == "I":
        gray = np.asarray(image, dtype=np.float32) / np.float32(65535)
        return np.repeat(np.clip(gray, 0, 1)[..., None], 3, axis=2)
    if image.mode == "F":
        gray = np.asarray(image, dtype=np.float32)
        return np.repeat(np.clip(gray, 0, 1)[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255)


def is_16bit_colour(image: Image.Image) -> bool:
    """True for 16-bit RGB/RGBA PNG and TIFF files, which Pillow would truncate to 8 bits."""
    if image.format == "PNG":
        rawmodes = [tile.args if isinstance(tile.args, str) else tile.args[0] for tile in image.tile]
        return image.mode in ("RGB", "RGBA") and any(";16" in rawmode for rawmode in rawmodes)
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))
        return image.mode in ("RGB", "RGBA") and max(bits) == 16
    return False


def read_png16(path: Path) -> np.ndarray:
    """Decode a non-interlaced 16-bit RGB or RGBA PNG to an HxWxC uint16 array.

    PNG filters rows bytewise from the left, upper and upper-left neighbours; those dependencies
    let every anti-diagonal of pixels be unfiltered at once (H + W vectorised steps).
    """
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ImageError(f"{path}: not a PNG file")
    chunks, offset, header = [], 8, None
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        header = body if kind == b"IHDR" else header
        chunks += [body] if kind == b"IDAT" else []
        offset += 12 + length
    if header is None or len(header) < 13:
        raise ImageError(f"{path}: not a readable PNG (no image header)")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[:13])
    if interlace:
        raise ImageError(f"{path}: interlaced 16-bit colour PNGs are not supported; save it without interlacing")
    channels = {2: 3, 6: 4}[colour]
    bpp, row_bytes = 2 * channels, 2 * channels * width
    rows = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8)[:height * (row_bytes + 1)]
    rows = rows.reshape(height, row_bytes + 1)
    filters, filtered = rows[:, 0], rows[:, 1:].reshape(height, width, bpp).astype(np.int32)
    if filters.max() > 4:
        raise ImageError(f"{path}: corrupt PNG data (unknown row filter {filters.max()})")
    out = np.zeros((height + 1, width + 1, bpp), np.int32)  # one row/column of zeros up and left
    for diagonal in range(height + width - 1):
        y = np.arange(max(0, diagonal - width + 1), min(height, diagonal + 1))
        x = diagonal - y
        left, up, upleft = out[y + 1, x], out[y, x + 1], out[y, x]
        estimate = left + up - upleft
        paeth = np.where((np.abs(estimate - left) <= np.abs(estimate - up))
                         & (np.abs(estimate - left) <= np.abs(estimate - upleft)), left,
                         np.where(np.abs(estimate - up) <= np.abs(estimate - upleft), up, upleft))
        predictions = np.stack([np.zeros_like(left), left, up, (left + up) // 2, paeth])
        out[y + 1, x + 1] = (filtered[y, x] + predictions[filters[y], np.arange(len(y))]) % 256
    pixels = out[1:, 1:].astype(np.uint16)
    return (pixels[..., 0::2] << 8) | pixels[..., 1::2]


def save_image(path: PathLike, image: np.ndarray) -> Path:
    """Write an HxW or HxWx3 float image in [0, 1] as an 8-bit PNG (parent folders are created).

    Values are clipped to [0, 1] first, then scaled by 255 and rounded to the nearest integer, so
    out-of-range values saturate instead of wrapping around.
    """
    path = Path(path)
    image = np.asarray(image)
    if path.suffix.lower() != ".png":
        raise ImageError(f"{path}: images are saved as PNG; use a .png file name")
    if not np.issubdtype(image.dtype, np.floating) or image.ndim not in (2, 3) \
            or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ImageError(f"{path}: expected an HxW or HxWx3 float image in [0, 1], got {image.dtype} "
                         f"of shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ImageError(f"{path}: the image contains NaN or infinite values")
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def kernel_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in KERNEL_FORMATS:
        raise KernelError(f"{path}: unknown kernel file type {suffix!r}; use one of {', '.join(KERNEL_FORMATS)}")
    return suffix


def load_kernel(path: PathLike) -> np.ndarray:
    """Read a kernel from ``.npy`` or MATLAB ``.mat`` (variable ``Kernel``) and validate it."""
    path = Path(path)
    suffix = kernel_format(path)
    if not path.is_file():
        raise KernelError(f"{path}: no such kernel file")
    try:
        if suffix == ".npy":
            kernel = np.load(path, allow_pickle=False)
        else:
            variables = scipy.io.loadmat(path)
            if MAT_VARIABLE not in variables:
                found = ", ".join(k for k in variables if not k.startswith("__")) or "none"
                raise KernelError(f"{path}: no variable {MAT_VARIABLE!r} in the MATLAB file (found: {found})")
            kernel = variables[MAT_VARIABLE]
    except KernelError:
        raise
    except (OSError, ValueError, TypeError, NotImplementedError, struct.error, scipy.io.matlab.MatReadError) as error:
        raise KernelError(f"{path}: not a readable {suffix} kernel file ({error})") from None
    return validate_kernel(kernel, str(path))


def save_kernel(path: PathLike, kernel: np.ndarray) -> Path:
    """Write a validated kernel as ``.npy`` or MATLAB ``.mat`` (variable ``Kernel``)."""
    path = Path(path)
    suffix = kernel_format(path)
    kernel = validate_kernel(kernel, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(path, kernel, allow_pickle=False)
    else:
        scipy.io.savemat(path, {MAT_VARIABLE: kernel})
    return path


def write_npz(path: PathLike, arrays: dict[str, np.ndarray], what: str) -> None:
    """Save plain ``arrays`` as an ``.npz`` (which :func:`read_npz` reads back without pickle),
    making its folder; a path not ending in ``.npz`` is refused, saying it is for a ``what``."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"a {what} is saved as .npz, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def read_npz(path: PathLike, error: type[Exception], what: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` of plain arrays (a pickle is never loaded); anything else raises
    ``error``, saying the file is not a ``what`` file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise error(f"{path}: not a {what} file (.npz of plain arrays): {exc}") from None
