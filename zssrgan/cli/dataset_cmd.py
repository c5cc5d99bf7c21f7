"""``zssrgan make-dataset``: degrade a folder of HR images into the DIV2KRK benchmark layout."""
from __future__ import annotations

import argparse

from ..datasets import discover, make_dataset
from ..protocols import PROTOCOLS
from .common import comma_separated

help = "make a synthetic benchmark (DIV2KRK layout) from a folder of high-resolution images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="src", required=True, metavar="DIR", help="folder of high-resolution images")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="new or empty output folder, or a dataset made by this command (replaced)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="div2krk",
                        help="; ".join(f"{name}: {p.description}" for name, p in PROTOCOLS.items())
                        + " (default div2krk)")
    parser.add_argument("--scales", type=comma_separated(int), default=(2, 4), metavar="2,4",
                        help="scale factors (default 2,4)")
    parser.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                        help="additive Gaussian noise on the LR images, std in 8-bit levels (0-255; default 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the kernels and the noise (default 0)")


def run(args: argparse.Namespace) -> int:
    out = make_dataset(args.src, args.out, protocol=args.protocol, scales=args.scales, seed=args.seed,
                       noise=args.noise)
    counts = ", ".join(f"{len(discover(out, s))} images at x{s}" for s in sorted(set(args.scales)))
    noise = f", noise std {args.noise:g}/255" if args.noise else ""
    print(f"{counts}: {args.protocol} protocol{noise} -> {out}")
    return 0
