"""``zssrgan demo``: the whole benchmark in a few minutes on a laptop, from photos that ship with
scikit-image (no download): a small DIV2KRK-protocol x2 dataset, every method on a local Ray, a
local MLflow store and the report, all inside one folder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import InputError
from .common import add_config_arguments, config_from_args, sweep_overrides, warn_if_slow

help = "run every method on a few bundled photos (local Ray + MLflow) and write the report"

# scikit-image's bundled colour photos (in the wheel, readable offline) and the centre of a
# textured region of each (fractions of height and width), so a small crop still shows detail
PHOTOS = {
    "astronaut": (0.22, 0.45),
    "chelsea": (0.45, 0.5),
    "immunohistochemistry": (0.5, 0.5),
    "rocket": (0.5, 0.5),
    "coffee": (0.35, 0.5),
    "hubble_deep_field": (0.5, 0.5),
}
EXPERIMENT = "demo"
OWN = ("photos", "data", "mlflow.db", "mlartifacts", "report")  # what the demo writes in --out


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= len(PHOTOS):
        raise argparse.ArgumentTypeError(f"--images must be 1 to {len(PHOTOS)}, got {value}")
    return value


def _size(text: str) -> int:
    value = int(text)
    if value < 32 or value % 4:
        raise argparse.ArgumentTypeError(f"--size must be a multiple of 4 and at least 32 pixels, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="zssrgan-demo", metavar="DIR",
                        help="folder for the photos, dataset, MLflow store and report (default zssrgan-demo)")
    parser.add_argument("--images", type=_count, default=3, metavar="N",
                        help=f"number of photos, 1 to {len(PHOTOS)} (default 3)")
    parser.add_argument("--size", type=_size, default=192, metavar="PX",
                        help="side of the ground-truth crop in pixels; the LR input is half (default 192)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="parallel jobs (default: one per CPU core)")
    add_config_arguments(parser, default_preset="quick", real=False)  # the training options of `zssrgan run`


def write_photos(folder: Path, count: int, size: int) -> Path:
    """``count`` square ``size`` crops of the bundled photos as PNG files in ``folder``."""
    from skimage import data

    from ..io import save_image

    folder.mkdir(parents=True, exist_ok=True)
    for name, (fy, fx) in list(PHOTOS.items())[:count]:
        photo = np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
        h, w = photo.shape[:2]
        side = min(size, h, w)
        top = int(np.clip(round(fy * h) - side // 2, 0, h - side))
        left = int(np.clip(round(fx * w) - side // 2, 0, w - side))
        save_image(folder / f"{name}.png", photo[top:top + side, left:left + side, :3])
    return folder


def check_size(size: int, cfg: Config) -> None:
    """KernelGAN crops ``kernelgan.input_crop`` px from the LR input after shaving its border."""
    shave = cfg.kernelgan.shave
    need = cfg.kernelgan.input_crop + 2 * shave
    if size // 2 < need:
        raise InputError(f"--size {size} gives a {size // 2} px LR input, but KernelGAN needs {need} px "
                         f"(kernelgan.input_crop {cfg.kernelgan.input_crop} + 2 x kernelgan.shave {shave}); "
                         f"use --size {-(-2 * need // 4) * 4} or more, or a smaller kernelgan.input_crop")


def run(args: argparse.Namespace) -> int:
    from cluster.driver import format_summary, run_sweep
    from cluster.jobs import SweepSpec

    from ..datasets import make_dataset
    from ..methods import METHODS
    from ..report import own_folder
    from .report_cmd import write_report

    cfg = config_from_args(args)
    check_size(args.size, cfg)
    warn_if_slow(args.preset, METHODS, cfg.device)
    # an earlier demo's folder is reused: same photos, same jobs, so finished jobs are not run again
    out = own_folder(Path(args.out).expanduser().resolve(), OWN, replace=("photos", "data"))
    photos = write_photos(out / "photos", args.images, args.size)
    dataset = make_dataset(photos, out / "data", protocol="div2krk", scales=(2,), seed=0)
    tracking_uri = f"sqlite:///{out / 'mlflow.db'}"
    spec = SweepSpec(data=[str(dataset)], methods=list(METHODS), scales=[2], seeds=[args.seed or 0],
                     preset=args.preset, overrides=sweep_overrides(args), experiment=EXPERIMENT,
                     tracking_uri=tracking_uri, workers=args.workers)
    count = f"{args.images} photo{'s' if args.images > 1 else ''}"
    print(f"demo: {count} ({args.size}x{args.size} ground truth, x2 DIV2KRK kernels) in {dataset}; "
          f"methods: {', '.join(METHODS)}; preset {args.preset}", file=sys.stderr)
    summary = run_sweep(spec, stream=sys.stderr)
    print(format_summary(summary))
    index = write_report(tracking_uri, EXPERIMENT, out / "report", sweep=summary["sweep_id"])
    print(f"\nreport: {index}")
    print(f"browse the runs: {summary['look']}")
    return 130 if summary["status"] == "KILLED" else (1 if summary["failed"] else 0)
