"""``zssrgan kernel``: estimate an image's downscaling kernel and save it."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..config import Config, set_value, valid_keys
from ..errors import InputError
from ..estimators import get_estimator, run_estimator
from ..io import kernel_format, load_image, save_kernel
from .common import add_config_arguments, config_from_args

help = "estimate an image's blur kernel (x2, or x4 derived from it) with a kernel estimator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the low-resolution image (PNG, JPEG, TIFF, BMP)")
    parser.add_argument("--scale", type=int, choices=(2, 4), default=2, help="the kernel's scale factor (default 2)")
    parser.add_argument("--out", required=True, metavar="K.npy|K.mat", help="where to write the kernel")
    parser.add_argument("--iters", type=int, default=None,
                        help="the estimator's training iterations (default: the preset's)")
    add_config_arguments(parser)


def with_iters(cfg: Config, iters: int) -> Config:
    """``cfg`` with the estimator's iteration counts (``<section>.iters``, and ``iters_x4`` where it
    has one) set to ``iters``; an estimator that does not train has none to set."""
    if iters < 1:
        raise InputError(f"--iters must be at least 1, got {iters}")
    keys = [section + name for section in get_estimator(cfg.estimator).reads for name in ("iters", "iters_x4")
            if section + name in valid_keys()]
    if not keys:
        raise InputError(f"--iters: the {cfg.estimator} estimator does not train, it has no iterations")
    for key in keys:
        cfg = set_value(cfg, key, iters)
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.iters is not None:
        cfg = with_iters(cfg, args.iters)
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
