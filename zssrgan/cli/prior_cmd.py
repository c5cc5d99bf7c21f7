"""``zssrgan prior train``: train FKP's kernel prior (a normalizing flow over kernels) and save it."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Mapping, Optional, TextIO

from ..device import set_threads
from ..errors import InputError
from ..train.prior import PriorTrainingConfig, save_prior, train_prior, training_info

help = "train the kernel prior of kernelgan-fkp (a normalizing flow over blur kernels)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a prior by maximum likelihood on synthetic Gaussian kernels",
                               description="Train a prior by maximum likelihood on synthetic Gaussian kernels "
                                           "(defaults: the published budget, 100 epochs of 50,000 kernels).")
    defaults = PriorTrainingConfig()
    train.add_argument("--scale", type=int, choices=(2, 4), default=2, help="the kernels' scale factor (default 2)")
    train.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the weights")
    train.add_argument("--epochs", type=int, default=defaults.epochs, help=f"default {defaults.epochs}")
    train.add_argument("--kernels-per-epoch", type=int, default=defaults.kernels_per_epoch,
                       help=f"fresh kernels drawn each epoch (default {defaults.kernels_per_epoch})")
    train.add_argument("--seed", type=int, default=defaults.seed, help=f"random seed (default {defaults.seed})")
    train.add_argument("--threads", type=int, default=1,
                       help="torch threads (default 1: the flow is tiny, more threads only add overhead)")


class ProgressBar:
    """One line on stderr per epoch: a bar, the losses, elapsed time and ETA; rewritten in place on a terminal."""

    def __init__(self, total: int, stream: Optional[TextIO] = None) -> None:
        self.total, self.stream = total, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()

    def __call__(self, phase: str, step: int, values: Mapping[str, float]) -> None:
        done = step + 1
        elapsed = time.monotonic() - self.start
        filled = round(20 * done / self.total)
        line = (f"[prior] epoch {done}/{self.total} |{'#' * filled}{'.' * (20 - filled)}| "
                f"loss {values['loss']:.2f}, held-out log-likelihood {values['held_out_log_likelihood']:.2f} | "
                f"{elapsed:.0f} s, ETA {elapsed / done * (self.total - done):.0f} s")
        self.stream.write(f"\r{line}" if self.tty else line + "\n")
        if self.tty and done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".npz":
        raise InputError(f"--out must name an .npz file, got {args.out!r}")
    cfg = PriorTrainingConfig(scale=args.scale, epochs=args.epochs, kernels_per_epoch=args.kernels_per_epoch,
                              seed=args.seed)
    set_threads(args.threads)
    prior, report = train_prior(cfg, ProgressBar(cfg.epochs))
    save_prior(out, prior, cfg.scale, training_info(cfg, report, args.threads))
    print(f"x{cfg.scale} prior -> {out}: held-out log-likelihood {report['held_out_log_likelihood_init']:.2f} "
          f"at initialisation, {report['held_out_log_likelihood']:.2f} after {cfg.epochs} epochs of "
          f"{cfg.kernels_per_epoch} kernels ({report['seconds']:.0f} s, {args.threads} torch thread(s))")
    return 0
