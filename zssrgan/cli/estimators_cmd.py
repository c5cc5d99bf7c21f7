"""``zssrgan estimators``: list the kernel estimators, one per line, name first, installed plugins last."""
from __future__ import annotations

import argparse

from ..estimators import ESTIMATORS, PLUGINS
from ..plugins import listing
from .common import print_listing

help = "list the kernel estimators the blind methods can use (--estimator NAME)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return print_listing({name: estimator.description + ("" if estimator.trainer is not None else
                                                         " (no generator: zssrgan-e2e does not apply)")
                          for name, estimator in ESTIMATORS.items()} | listing(PLUGINS))
