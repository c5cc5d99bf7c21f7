"""Options shared by the subcommands that train: preset, overrides, seed, device, kernel estimator,
real photo."""
from __future__ import annotations

import argparse
import sys
from typing import Iterable

from ..config import Config, PRESETS, apply_overrides, preset, set_value
from ..device import DEVICES, resolve_device
from ..methods import METHODS, with_plugin_settings


def comma_separated(kind: type):
    """An argparse type: comma-separated values of ``kind`` (``2,4``), as a list."""
    def parse(text: str) -> list:
        try:
            return [kind(t.strip()) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}")
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str = "paper",
                         real: bool = True) -> None:
    """--preset, --set, --seed, --device, --estimator and (unless ``real`` is False) --real."""
    described = {"paper": "paper, the published settings", "quick": "quick, short CPU runs"}
    parser.add_argument("--preset", choices=list(PRESETS), default=default_preset,
                        help=f"configuration preset (default {described[default_preset]}; "
                             + "; ".join(v for k, v in described.items() if k != default_preset) + ")")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field by its dotted key, e.g. --set kernelgan.iters=500")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--device", choices=list(DEVICES), default=None, help="auto (default), cpu or cuda")
    parser.add_argument("--estimator", default=None, metavar="NAME",
                        help="kernel estimator of the blind methods (default kernelgan; see `zssrgan estimators`), "
                             "or a plugin's module:function")
    if real:
        parser.add_argument("--real", action="store_true",
                            help="real photo: no shaving, no back-projection, noise on ZSSR's sons")


def print_listing(descriptions: dict[str, str]) -> int:
    """One line per entry of a table (``zssrgan methods``, ``zssrgan estimators``): name first."""
    width = max(map(len, descriptions))
    for name, description in descriptions.items():
        print(f"{name:<{width}}  {description}")
    return 0


def sweep_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` plus --device and --estimator as ``key=value`` overrides of a sweep's config."""
    return list(args.overrides) + [f"{key}={getattr(args, key)}" for key in ("device", "estimator")
                                   if getattr(args, key, None)]


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset, the settings sections of the plugins named (--method, --estimator, --set
    estimator=...), then the overrides and options."""
    methods = [args.method] if getattr(args, "method", None) else []
    estimators = [args.estimator] if getattr(args, "estimator", None) else []
    cfg = with_plugin_settings(preset(args.preset), methods, estimators, args.overrides)
    cfg = apply_overrides(cfg, args.overrides)
    for key in ("seed", "device", "estimator"):
        if getattr(args, key, None) is not None:
            cfg = set_value(cfg, key, getattr(args, key))
    if getattr(args, "real", False):
        cfg = set_value(cfg, "real", True)
    return cfg


def warn_if_slow(preset_name: str, methods: Iterable[str], device: str, local: bool = True) -> None:
    """Say before any training that the paper preset on a CPU takes tens of minutes per ZSSR run.
    ``device`` is the configured one; ``auto`` is judged from this machine only when ``local`` (on a
    joined cluster the workers' nodes decide)."""
    if preset_name != "paper" or not any(m in METHODS and m != "bicubic" for m in methods):
        return  # nothing of ours trains (estimates alone take minutes at most; a plugin's cost is its own)
    if device == "cpu" or (device == "auto" and local and resolve_device("auto").type == "cpu"):
        print("warning: with the paper preset on a CPU, one ZSSR run takes tens of minutes; "
              "add --preset quick for a short run", file=sys.stderr)
