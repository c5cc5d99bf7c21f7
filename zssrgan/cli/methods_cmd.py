"""``zssrgan methods``: list the methods with a one-line description each."""
from __future__ import annotations

import argparse

from ..methods import METHODS
from .common import print_listing

help = "list the available methods"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    return print_listing({name: method.description for name, method in METHODS.items()})
