"""``zssrgan make-dataset``: degrade a folder of HR images into the DIV2KRK benchmark layout."""
from __future__ import annotations

import argparse

from ..datasets import PROTOCOLS, discover, make_dataset

help = "make a synthetic benchmark (DIV2KRK layout) from a folder of high-resolution images"


def _scales(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales must be comma-separated integers, e.g. 2,4; got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="src", required=True, metavar="DIR", help="folder of high-resolution images")
    parser.add_argument("--out", required=True, metavar="DIR", help="new (or empty) output folder")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="div2krk",
                        help="div2krk: random anisotropic Gaussian kernels (default); bicubic: MATLAB bicubic")
    parser.add_argument("--scales", type=_scales, default=(2, 4), metavar="2,4", help="scale factors (default 2,4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the kernels (default 0)")


def run(args: argparse.Namespace) -> int:
    out = make_dataset(args.src, args.out, protocol=args.protocol, scales=args.scales, seed=args.seed)
    count = len(discover(out, min(args.scales)))
    print(f"{count} images, {args.protocol} protocol, scales {','.join(map(str, args.scales))} -> {out}")
    return 0
