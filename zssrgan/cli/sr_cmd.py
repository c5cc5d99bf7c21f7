"""``zssrgan sr``: super-resolve one image with one method and save the result."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import load_image, load_kernel, save_image
from ..methods import METHODS, SCALES, get_method, run_method
from .common import add_config_arguments, config_from_args, warn_if_slow

help = "super-resolve one image with one method"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the low-resolution image (PNG, JPEG, TIFF, BMP)")
    parser.add_argument("--method", required=True, metavar="NAME",
                        help="one of: " + ", ".join(METHODS) + ", an installed plugin or a plugin's module:function "
                             "(`zssrgan methods` describes them)")
    parser.add_argument("--scale", type=int, choices=SCALES, default=2, help="scale factor (default 2)")
    parser.add_argument("--out", required=True, metavar="SR.png", help="where to save the super-resolved image")
    parser.add_argument("--kernel", metavar="K.npy|K.mat",
                        help="the true blur kernel of the requested scale, for zssr-oracle")
    parser.add_argument("--kernel-x2", metavar="K2.npy|K2.mat",
                        help="at --scale 4: the true x2 kernel, which zssr-oracle's first (x2) stage needs; "
                             "without --kernel its analytic x4 kernel serves the x4 stage")
    add_config_arguments(parser)


def _kernels(args: argparse.Namespace) -> dict[int, np.ndarray] | None:
    """``{scale: kernel}`` from --kernel / --kernel-x2, loaded and validated; None when neither."""
    if args.kernel_x2 and args.scale != 4:
        raise InputError("--kernel-x2 is for --scale 4; at x2 give the kernel with --kernel")
    if (args.kernel or args.kernel_x2) and not get_method(args.method).needs_kernel:  # a taker from here on
        takers = ", ".join(name for name, method in METHODS.items() if method.needs_kernel)
        raise InputError(f"{args.method} does not take a true kernel (it would be ignored); --kernel is for: {takers} "
                         "(and plugins that declare needs_kernel)")
    if args.scale == 4 and args.kernel and not args.kernel_x2:
        raise InputError(f"{args.method} at x4 runs gradually (x2, then x4) and needs the true x2 kernel "
                         "too: add --kernel-x2 K2.npy")
    kernels = {args.scale: load_kernel(args.kernel)} if args.kernel else {}
    if args.kernel_x2:
        kernels[2] = load_kernel(args.kernel_x2)
    return kernels or None


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)  # an unknown method or a broken plugin fails here
    if Path(args.out).suffix.lower() != ".png":
        raise InputError(f"--out {args.out}: the SR image is saved as PNG; use a .png file name")
    kernels = _kernels(args)
    lr = load_image(args.image)
    warn_if_slow(args.preset, [args.method], cfg.device)
    result = run_method(args.method, lr, args.scale, cfg, kernels=kernels)
    path = save_image(args.out, result.sr)
    times = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in result.timings.items())
    print(f"{args.method} x{args.scale}: {lr.shape[1]}x{lr.shape[0]} -> {result.sr.shape[1]}x{result.sr.shape[0]} "
          f"saved to {path}")
    print(f"timings: {times}")
    return 0
