"""Options shared by the subcommands that train: preset, overrides, seed, device, real photo."""
from __future__ import annotations

import argparse

from ..config import Config, PRESETS, apply_overrides, preset, set_value
from ..device import DEVICES


def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str = "paper",
                         real: bool = True) -> None:
    """--preset, --set, --seed, --device and (unless ``real`` is False) --real."""
    described = {"paper": "paper, the published settings", "quick": "quick, short CPU runs"}
    parser.add_argument("--preset", choices=list(PRESETS), default=default_preset,
                        help=f"configuration preset (default {described[default_preset]}; "
                             + "; ".join(v for k, v in described.items() if k != default_preset) + ")")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field by its dotted key, e.g. --set kernelgan.iters=500")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--device", choices=list(DEVICES), default=None, help="auto (default), cpu or cuda")
    if real:
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
