"""``zssrgan methods``: list the methods with a one-line description each, installed plugins last."""
from __future__ import annotations

import argparse

from ..methods import METHODS, PLUGINS
from ..plugins import listing
from .common import print_listing

help = "list the available methods (installed plugins last)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return print_listing({**{name: method.description for name, method in METHODS.items()}, **listing(PLUGINS)})
