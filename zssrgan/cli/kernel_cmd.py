"""``zssrgan kernel``: estimate an image's downscaling kernel with KernelGAN and save it."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..config import set_value
from ..io import kernel_format, load_image, save_kernel
from ..train.kernelgan import estimate_kernel
from .common import add_config_arguments, config_from_args

help = "estimate an image's blur kernel with KernelGAN (x2, or x4 derived from it)"


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
            raise ValueError(f"--iters must be at least 1, got {args.iters}")
        cfg = set_value(cfg, "kernelgan.iters", args.iters)
    kernel_format(Path(args.out))  # a bad output name fails now, not after the training
    image = load_image(args.image)
    start = time.perf_counter()
    estimate = estimate_kernel(image, args.scale, cfg)
    kernel = estimate.kernels[args.scale]
    save_kernel(args.out, kernel)
    print(f"x{args.scale} kernel ({kernel.shape[0]}x{kernel.shape[1]}) -> {args.out}; "
          f"KernelGAN took {time.perf_counter() - start:.1f} s ({cfg.kernelgan.iters} iterations)")
    return 0
