"""``zssrgan methods``: list the methods with a one-line description each."""
from __future__ import annotations

import argparse

from ..methods import METHODS

help = "list the available methods"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    width = max(map(len, METHODS))
    for name, method in METHODS.items():
        print(f"{name:<{width}}  {method.description}")
    return 0
