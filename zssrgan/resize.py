"""MATLAB-compatible image resizing, in NumPy and in torch, from one weight computation.

PSNR figures in super-resolution are only comparable under MATLAB's ``imresize`` convention:
cubic interpolation with a = -0.5, antialiasing (a widened kernel) when downscaling, one dimension
at a time (the smallest scale first), weights normalised to sum 1, symmetric ("half-sample")
mirroring at the borders. ``resize_weights`` computes, per axis, which input pixels feed each
output pixel and with what weight; ``imresize`` (NumPy) and ``imresize_torch`` (CPU/CUDA, for
training loops) both apply it, so they agree to rounding.

A numeric 2-D ``kernel`` switches to the degradation model of the blind-SR datasets: correlate
with the kernel (reflect boundary, as ``scipy.ndimage.correlate``) and keep rows/columns
``round(linspace(0, H - 1/scale, H_out))``. Only downscaling (or scale 1: blur only) is defined.

The Python ``imresize`` port used by the published ZSSR/KernelGAN code (which produced
tests/data/imresize_vectors.npz) has two bugs this module fixes: it drops, instead of mirroring,
the taps left of the first row/column (a negative index wraps through an unsigned cast and gets
weight 0), which changes the first output rows and columns (2 at x0.5, 3 at x2, 6 at x4); and it
decides antialiasing for both axes from the first axis's scale, so an upscaled axis beside a
downscaled one gets a narrowed kernel.
tests/test_resize.py reproduces every vector exactly under those two rules and checks that
everything else agrees.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view

Scale = Union[float, Sequence[float], None]
Shape = Optional[Sequence[int]]
CUBIC_WIDTH = 4.0  # support of the cubic kernel, in input pixels at scale 1


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def mirror_indices(indices: np.ndarray, length: int) -> np.ndarray:
    """Map any integer index into [0, length) by symmetric mirroring (d c b a | a b c d | d c ...),
    MATLAB's border rule and scipy's ``reflect`` mode."""
    period = np.concatenate([np.arange(length), np.arange(length - 1, -1, -1)])
    return period[np.mod(indices, 2 * length)]


@lru_cache(maxsize=256)
def resize_weights(in_len: int, out_len: int, scale: float, antialiasing: bool = True
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis cubic resampling: ``(weights, indices)``, both (out_len, taps).

    Output pixel i is ``sum_t weights[i, t] * input[indices[i, t]]``; indices are already
    mirrored into [0, in_len). Antialiasing (only when scale < 1) stretches the kernel by 1/scale.
    The arrays are cached and read-only.
    """
    widen = antialiasing and scale < 1
    width = CUBIC_WIDTH / scale if widen else CUBIC_WIDTH
    # Input coordinate (1-based, as MATLAB) of each output pixel centre.
    centres = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(centres - width / 2)
    taps = int(np.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps) - 1  # 0-based
    distance = centres[:, None] - indices - 1
    weights = scale * cubic(scale * distance) if widen else cubic(distance)
    sums = weights.sum(axis=1, keepdims=True)
    weights = weights / np.where(sums == 0, 1.0, sums)
    used = np.any(weights != 0, axis=0)  # drop tap columns that are zero for every output pixel
    weights, indices = weights[:, used], mirror_indices(indices[:, used].astype(np.int64), in_len)
    weights.flags.writeable = False
    indices.flags.writeable = False
    return weights, indices


def resize_plan(in_shape: Sequence[int], scale: Scale, output_shape: Shape
                ) -> tuple[tuple[float, float], tuple[int, int]]:
    """Validate the request and return per-axis (scales, output shape) for the first two axes.

    Exactly one of ``scale`` (a number or a pair) and ``output_shape`` (a pair) is given. From a
    scale, the output side is ``ceil(side * scale)`` (as MATLAB; products within 1e-9 of an integer
    count as that integer, so 30 * (1/3) is 10, not 11); from an output shape, scale = out / in.
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale and output_shape")
    in_hw = tuple(int(s) for s in in_shape[:2])
    if min(in_hw) < 1:
        raise ValueError(f"cannot resize an empty image of shape {tuple(in_shape)}")
    if output_shape is not None:
        out = tuple(int(s) for s in output_shape)
        if len(out) != 2 or min(out) < 1 or any(o != s for o, s in zip(out, output_shape)):
            raise ValueError(f"output_shape must be two positive integers (rows, cols), got {output_shape!r}")
        return (out[0] / in_hw[0], out[1] / in_hw[1]), out
    scales = tuple(float(s) for s in np.broadcast_to(np.asarray(scale, dtype=np.float64), (2,))) \
        if np.ndim(scale) in (0, 1) and np.size(scale) in (1, 2) else None
    if scales is None or not all(np.isfinite(s) and s > 0 for s in scales):
        raise ValueError(f"scale must be a positive number or a pair of them, got {scale!r}")
    out = tuple(max(1, int(np.ceil(np.round(s * n, 9)))) for s, n in zip(scales, in_hw))
    return scales, out


def axis_order(scales: Sequence[float]) -> list[int]:
    """Axes to resize, smallest scale first (MATLAB's order); scale-1 axes are left untouched."""
    return [axis for axis in np.argsort(scales, kind="stable").tolist() if scales[axis] != 1.0]


def kernel_rows_cols(in_hw: Sequence[int], out_hw: Sequence[int], scales: Sequence[float]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns a numeric-kernel downscale keeps: round(linspace(0, n - 1/s, n_out))."""
    return tuple(np.round(np.linspace(0, n - 1 / s, m)).astype(np.int64)
                 for n, m, s in zip(in_hw, out_hw, scales))


def reflect_pad_indices(size: int, side: int) -> np.ndarray:
    """Indices that pad an axis of ``size`` for a kernel ``side`` taps long as
    ``scipy.ndimage.correlate`` does (``reflect``: edge repeated; origin at tap side // 2)."""
    return mirror_indices(np.arange(size + side - 1) - side // 2, size)


def check_numeric_kernel(kernel, scales: Sequence[float]) -> None:
    if kernel.ndim != 2 or min(kernel.shape) < 1:
        raise ValueError(f"a numeric kernel must be a non-empty 2-D array, got shape {tuple(kernel.shape)}")
    if max(scales) > 1:
        raise ValueError(f"a numeric kernel can only downscale (scale <= 1), got scale {tuple(scales)}; "
                         "upscaling is cubic (kernel=None)")


def imresize(image: np.ndarray, scale: Scale = None, output_shape: Shape = None,
             kernel: Optional[np.ndarray] = None, antialiasing: bool = True) -> np.ndarray:
    """Resize an HxW or HxWxC image as MATLAB's ``imresize(image, scale, 'bicubic')`` does.

    With a numeric 2-D ``kernel``: correlate and subsample instead (blind-SR degradation).
    float32 stays float32; anything else is computed and returned as float64.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or not np.issubdtype(image.dtype, np.number):
        raise ValueError(f"image must be a numeric HxW or HxWxC array, got {image.dtype} of shape {image.shape}")
    dtype = np.float32 if image.dtype == np.float32 else np.float64
    image = image.astype(dtype, copy=False)
    scales, out_hw = resize_plan(image.shape, scale, output_shape)
    if kernel is not None:
        kernel = np.asarray(kernel, dtype=np.float64)
        check_numeric_kernel(kernel, scales)
        # Correlate only where the output is kept (1/scale^2 of a full pass): per kernel row, the
        # kept rows' windows at the kept columns, times that row of taps.
        (kh, kw), (h, w) = kernel.shape, image.shape[:2]
        rows, cols = kernel_rows_cols(image.shape, out_hw, scales)
        pad_rows, padded = reflect_pad_indices(h, kh), image[:, reflect_pad_indices(w, kw)]
        return sum(sliding_window_view(padded[pad_rows[rows + i]], kw, axis=1)[:, cols] @ kernel[i].astype(dtype)
                   for i in range(kh))
    out = image
    for axis in axis_order(scales):
        weights, indices = resize_weights(image.shape[axis], out_hw[axis], scales[axis], bool(antialiasing))
        # One gather per tap (a handful), each vectorised over the whole image.
        shape = [1] * image.ndim
        shape[axis] = -1
        out = sum(weights[:, t].astype(dtype).reshape(shape) * np.take(out, indices[:, t], axis=axis)
                  for t in range(weights.shape[1]))
    return out.astype(dtype, copy=False) if out is not image else image.copy()


@lru_cache(maxsize=64)
def weight_matrix(in_len: int, out_len: int, scale: float, antialiasing: bool,
                  device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``resize_weights`` as a dense (out_len, in_len) matrix on ``device`` (cached): one matmul
    per axis, fast on GPUs for the crop sizes of training loops, and differentiable."""
    weights, indices = resize_weights(in_len, out_len, scale, antialiasing)
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), weights.shape[1]), indices.ravel()), weights.ravel())
    return torch.as_tensor(matrix, dtype=dtype, device=device)


def imresize_torch(x: torch.Tensor, scale: Scale = None, output_shape: Shape = None,
                   kernel: Union[np.ndarray, torch.Tensor, None] = None, antialiasing: bool = True
                   ) -> torch.Tensor:
    """``imresize`` for an NCHW tensor on any device; same weights, same conventions.

    A numeric ``kernel`` may be a tensor (gradients then flow into it as well as into ``x``).
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point NCHW tensor, got "
                         f"{type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))}")
    in_hw = tuple(x.shape[2:])
    scales, out_hw = resize_plan(in_hw, scale, output_shape)
    if kernel is not None:
        kernel = torch.as_tensor(kernel, dtype=x.dtype, device=x.device)
        check_numeric_kernel(kernel, scales)
        return kernel_downscale_torch(x, kernel, out_hw, scales)
    out = x
    for axis in axis_order(scales):
        matrix = weight_matrix(in_hw[axis], out_hw[axis], scales[axis], bool(antialiasing), x.device, x.dtype)
        out = matrix @ out if axis == 0 else out @ matrix.T
    return out if out is not x else x.clone()


@lru_cache(maxsize=256)
def pad_indices_on(size: int, side: int, device: torch.device) -> torch.Tensor:
    """``reflect_pad_indices`` on ``device``, made once: training loops downscale the same crop
    size every step, and a host-to-device copy per step would stall a GPU."""
    return torch.as_tensor(reflect_pad_indices(size, side), device=device)


def kernel_downscale_torch(x: torch.Tensor, kernel: torch.Tensor, out_hw: tuple[int, int],
                           scales: Sequence[float]) -> torch.Tensor:
    """Correlate with scipy's ``reflect`` padding (edge repeated: torch's own ``reflect`` mode
    does not repeat it) and keep the rows/columns of ``kernel_rows_cols``. When they are evenly
    spaced (any image whose size the scale divides) a strided convolution computes only those."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    pad_rows, pad_cols = pad_indices_on(h, kh, x.device), pad_indices_on(w, kw, x.device)
    padded = x.reshape(n * c, 1, h, w).index_select(2, pad_rows).index_select(3, pad_cols)
    kept = kernel_rows_cols((h, w), out_hw, scales)
    steps = [int(k[1] - k[0]) if len(k) > 1 else 1 for k in kept]
    if all(np.array_equal(k, step * np.arange(len(k))) for k, step in zip(kept, steps)):
        out = F.conv2d(padded, kernel[None, None], stride=steps)[:, :, :out_hw[0], :out_hw[1]]
    else:  # conv2d is a correlation, as scipy's
        rows, cols = (torch.as_tensor(k, device=x.device) for k in kept)
        out = F.conv2d(padded, kernel[None, None]).index_select(2, rows).index_select(3, cols)
    return out.reshape(n, c, *out_hw)
