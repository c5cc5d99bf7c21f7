"""Options shared by the subcommands that train: preset, overrides, seed, device, real photo."""
from __future__ import annotations

import argparse

from ..config import Config, PRESETS, apply_overrides, preset, set_value
from ..device import DEVICES


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=list(PRESETS), default="paper",
                        help="configuration preset (default: paper, the published settings; quick: short CPU runs)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field by its dotted key, e.g. --set kernelgan.iters=500")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--device", choices=list(DEVICES), default=None, help="auto (default), cpu or cuda")
    parser.add_argument("--real", action="store_true",
                        help="real photo: no shaving, no back-projection, noise on ZSSR's sons")


def config_from_args(args: argparse.Namespace) -> Config:
    cfg = apply_overrides(preset(args.preset), args.overrides)
    for key in ("seed", "device"):
        if getattr(args, key, None) is not None:
            cfg = set_value(cfg, key, getattr(args, key))
    if getattr(args, "real", False):
        cfg = set_value(cfg, "real", True)
    return cfg
