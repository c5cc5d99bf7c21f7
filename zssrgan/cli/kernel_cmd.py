"""``zssrgan kernel``: estimate an image's downscaling kernel and save it."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..config import set_value
from ..errors import InputError
from ..estimators import run_estimator
from ..io import kernel_format, load_image, save_kernel
from .common import add_config_arguments, config_from_args

help = "estimate an image's blur kernel (x2, or x4 derived from it) with a kernel estimator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the low-resolution image (PNG, JPEG, TIFF, BMP)")
    parser.add_argument("--scale", type=int, choices=(2, 4), default=2, help="the kernel's scale factor (default 2)")
    parser.add_argument("--out", required=True, metavar="K.npy|K.mat", help="where to write the kernel")
    parser.add_argument("--iters", type=int, default=None, help="KernelGAN iterations (default: the preset's)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.iters is not None:
        if args.iters < 1:
            raise InputError(f"--iters must be at least 1, got {args.iters}")
        cfg = set_value(cfg, "kernelgan.iters", args.iters)
    kernel_format(Path(args.out))  # a bad output name fails now, not after the training
    image = load_image(args.image)
    start = time.perf_counter()
    estimate = run_estimator(image, args.scale, cfg)  # a collapsed estimate raises, with its reason
    kernel = estimate.kernels[args.scale]
    save_kernel(args.out, kernel)
    diagnostics = ", ".join(f"{k} {v:.3g}" for k, v in estimate.diagnostics.items())
    print(f"x{args.scale} kernel ({kernel.shape[0]}x{kernel.shape[1]}) -> {args.out}; {cfg.estimator} took "
          f"{time.perf_counter() - start:.1f} s ({diagnostics})")
    return 0
