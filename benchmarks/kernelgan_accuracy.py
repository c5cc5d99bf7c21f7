"""KernelGAN accuracy on benchmarks/data/kernelgan_reference: our estimates vs the true kernels,
vs the published code's estimates (errors.json) and vs a generic guess (13x13 isotropic Gaussian,
sigma 1.5). The error is the shift-invariant relative error of ``zssrgan.metrics.kernel_error``.

    .venv/bin/python benchmarks/kernelgan_accuracy.py [--seeds 0 1] [--images bird woman]
        [--preset paper] [--set kernelgan.iters=1000] [--variant NAME KEY=VALUE ...]

``--variant`` adds a configuration to compare in the same run (repeatable), e.g.
``--variant more_crops kernelgan.n_crop_positions=6000``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from zssrgan.config import apply_overrides, preset, set_value
from zssrgan.device import device_name, resolve_device, set_threads
from zssrgan.io import load_image
from zssrgan.kernels import isotropic_gaussian
from zssrgan.metrics import kernel_error
from zssrgan.train.kernelgan import estimate_kernel

DATA = Path(__file__).parent / "data" / "kernelgan_reference"
OUT = Path(__file__).parent / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="+", default=["bird", "butterfly", "woman", "baboon"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME [KEY=VALUE ...]")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default="kernelgan_accuracy", help="output name under benchmarks/out/")
    args = parser.parse_args()
    set_threads(args.threads)
    base = set_value(apply_overrides(preset(args.preset), args.overrides), "device", "cpu")
    variants = {"default": base, **{v[0]: apply_overrides(base, v[1:]) for v in args.variant}}
    published = json.loads((DATA / "errors.json").read_text())
    generic = isotropic_gaussian(13, 1.5)

    rows = []
    for name in args.images:
        image = load_image(DATA / "lr_x2" / f"{name}.png")
        truth = np.load(DATA / "gt_k_x2" / f"{name}.npy", allow_pickle=False)
        for variant, cfg in variants.items():
            for seed in args.seeds:
                start = time.perf_counter()
                estimate = estimate_kernel(image, 2, set_value(cfg, "seed", seed))
                row = {"image": name, "variant": variant, "seed": seed,
                       "error": kernel_error(estimate.kernels[2], truth),
                       "generic_error": kernel_error(generic, truth),
                       "published_code_error": published[name]["published_code_rel_error"],
                       "seconds": time.perf_counter() - start}
                rows.append(row)
                print(f"{name:<10}{variant:<14}seed {seed}: error {row['error']:.3f}  generic {row['generic_error']:.3f}"
                      f"  published code {row['published_code_error']:.3f}  ({row['seconds']:.0f} s)", flush=True)

    summary = {}
    print(f"\n{'variant':<14}{'mean error':>11}{'generic':>9}{'published':>11}{'runs':>6}{'no better than generic':>24}")
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        worse = sum(r["error"] >= r["generic_error"] for r in mine)
        summary[variant] = {
            "mean_error": float(np.mean([r["error"] for r in mine])),
            "mean_generic_error": float(np.mean([r["generic_error"] for r in mine])),
            "mean_published_code_error": float(np.mean([r["published_code_error"] for r in mine])),
            "runs": len(mine), "no_better_than_generic": worse,
        }
        s = summary[variant]
        print(f"{variant:<14}{s['mean_error']:>11.3f}{s['mean_generic_error']:>9.3f}"
              f"{s['mean_published_code_error']:>11.3f}{len(mine):>6}{worse:>24}")
    OUT.mkdir(exist_ok=True)
    (OUT / f"{args.json}.json").write_text(json.dumps(
        {"hardware": device_name(resolve_device(base.device)), "preset": args.preset, "overrides": args.overrides,
         "variants": {k: v[1:] for k, v in ((v[0], v) for v in args.variant)}, "rows": rows, "summary": summary},
        indent=1))


if __name__ == "__main__":
    main()
