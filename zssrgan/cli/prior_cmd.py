"""``zssrgan prior train``: train FKP's kernel prior (a normalizing flow over kernels) and save it;
``zssrgan prior train-blur``: train ``auto``'s spectral blur model (zssrgan.blur_model)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Mapping, Optional, TextIO

from ..device import set_threads
from ..errors import InputError
from ..datasets import images_by_name
from ..io import load_image
from ..train.prior import PriorTrainingConfig, save_prior, train_prior, training_info
from ..blur_model import BlurTrainingConfig, save_blur_model, train_blur_model

help = "train the kernel prior of kernelgan-fkp (a normalizing flow over blur kernels) or auto's blur model"


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
    blur_defaults = BlurTrainingConfig()
    blur = actions.add_parser("train-blur", help="train auto's spectral blur model on synthetic degradations of HR images",
                               description="Train auto's spectral blur model: random crops of the HR images, "
                                           "degraded by MATLAB bicubic and DIV2KRK-protocol kernels (x2), their "
                                           "spectral features regressed onto the kernels' widths and axes.")
    blur.add_argument("--images", required=True, metavar="DIR", help="folder of HR images (PNG, JPEG, ...)")
    blur.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the model")
    blur.add_argument("--exclude", default="", metavar="A,B", help="image names (file stems) to leave out, to check on")
    blur.add_argument("--crops", type=int, default=blur_defaults.crops_per_image,
                       help=f"random crops per image (default {blur_defaults.crops_per_image})")
    blur.add_argument("--seed", type=int, default=blur_defaults.seed, help=f"random seed (default {blur_defaults.seed})")


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
    if args.action == "train-blur":
        return run_train_blur(args, out)
    cfg = PriorTrainingConfig(scale=args.scale, epochs=args.epochs, kernels_per_epoch=args.kernels_per_epoch,
                              seed=args.seed)
    set_threads(args.threads)
    prior, report = train_prior(cfg, ProgressBar(cfg.epochs))
    save_prior(out, prior, cfg.scale, training_info(cfg, report, args.threads))
    print(f"x{cfg.scale} prior -> {out}: held-out log-likelihood {report['held_out_log_likelihood_init']:.2f} "
          f"at initialisation, {report['held_out_log_likelihood']:.2f} after {cfg.epochs} epochs of "
          f"{cfg.kernels_per_epoch} kernels ({report['seconds']:.0f} s, {args.threads} torch thread(s))")
    return 0


def run_train_blur(args: argparse.Namespace, out: Path) -> int:
    folder, excluded = Path(args.images), set(filter(None, args.exclude.split(",")))
    if not folder.is_dir():
        raise InputError(f"--images: no folder {folder}")
    found = images_by_name(folder)
    unknown = sorted(excluded - set(found))
    if unknown:
        raise InputError(f"--exclude: no image named {', '.join(unknown)} in {folder} (there are: {', '.join(found)})")
    images = {name: load_image(path) for name, path in found.items() if name not in excluded}
    model = train_blur_model(images, BlurTrainingConfig(crops_per_image=args.crops, seed=args.seed))
    save_blur_model(out, model)
    info = model.info
    print(f"blur model -> {out}: {info['cases']} cases from {len(images)} images in {info['seconds']:.0f} s; "
          f"leave-one-image-out: DIV2KRK-protocol width error {info['loo_div2krk_mean_abs_error']:.3f} px "
          f"(rank correlation {info['loo_div2krk_rank_correlation']:.2f}), angle error "
          f"{info['loo_div2krk_median_angle_error']:.0f} deg (median, aspect >= 1.5); bicubic widths 95th percentile "
          f"{info['loo_bicubic_p95']:.2f} px, max {info['loo_bicubic_max']:.2f} (true 0.85)")
    return 0
