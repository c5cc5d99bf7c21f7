"""Every method under the ``quick`` preset on small crops of classic images, x2.

Each image is cropped to ~200x200 (HR) and degraded twice: with a random DIV2KRK kernel
(anisotropic) and with MATLAB bicubic. KernelGAN's estimate is computed once per LR image and
shared by the methods that use it, as the sweep runner does (its time is reported as ``kernelgan``).
Prints a table and writes benchmarks/out/methods_quick.json.

    .venv/bin/python benchmarks/methods_quick.py [--images bird,baby] [--methods zssr,kernelgan-zssr]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from zssrgan.config import apply_overrides, preset
from zssrgan.device import device_name, resolve_device, set_threads
from zssrgan.io import load_image
from zssrgan.kernels import matlab_bicubic_kernel, sample_div2krk_kernel
from zssrgan.methods import METHODS, run_method
from zssrgan.metrics import evaluate
from zssrgan.protocols import centred_for
from zssrgan.resize import imresize
from zssrgan.estimators import run_estimator

HERE = Path(__file__).resolve().parent
CLASSIC = HERE / "data" / "classic"
OUT = HERE / "out" / "methods_quick.json"


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window (the whole side where the image is smaller)."""
    top, left = max(0, (image.shape[0] - size) // 2), max(0, (image.shape[1] - size) // 2)
    return image[top:top + size, left:left + size]


def degradations(hr: np.ndarray, name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label: (lr, true x2 kernel)}``: a DIV2KRK kernel (seeded by the name, centred for x2 as
    ``zssrgan.protocols`` degrades) and MATLAB bicubic (whose kernel the oracle gets)."""
    kernels = {"div2krk": centred_for(sample_div2krk_kernel(np.random.default_rng(sum(map(ord, name)))), 2),
               "bicubic": matlab_bicubic_kernel(2)}
    return {label: (np.clip(imresize(hr, scale=0.5, kernel=k), 0, 1).astype(np.float32), k)
            for label, k in kernels.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="bird,baby,woman")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--size", type=int, default=200, help="HR crop side (default 200)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    cfg = apply_overrides(preset("quick"), args.overrides)
    if args.threads:
        set_threads(args.threads)
    methods = args.methods.split(",")
    rows = []
    for name in args.images.split(","):
        hr = centre_crop(load_image(CLASSIC / f"{name}.png"), args.size)
        for label, (lr, kernel) in degradations(hr, name).items():
            start, cpu = time.perf_counter(), time.process_time()
            estimate = run_estimator(lr, 2, cfg, discriminator=True)
            kernelgan_s, kernelgan_cpu_s = time.perf_counter() - start, time.process_time() - cpu
            for method in methods:
                cpu = time.process_time()
                result = run_method(method, lr, 2, cfg, kernels={2: kernel},
                                    estimate=estimate if METHODS[method].shares_estimate else None)
                metrics = evaluate(result.sr, lr, 2, gt=hr, kernel_used=result.kernel, true_kernel=kernel)
                rows.append({"image": name, "degradation": label, "method": method,
                             "psnr_y": metrics["psnr_y"], "ssim_y": metrics["ssim_y"],
                             "sharpness": metrics["sharpness"], "time_s": result.timings["total"],
                             "cpu_s": time.process_time() - cpu,
                             "kernelgan_s": kernelgan_s if METHODS[method].shares_estimate else 0.0,
                             "kernelgan_cpu_s": kernelgan_cpu_s if METHODS[method].shares_estimate else 0.0})
                r = rows[-1]
                print(f"{name:10s} {label:8s} {method:15s} {r['psnr_y']:6.2f} dB  SSIM {r['ssim_y']:.4f}  "
                      f"sharp {r['sharpness']:.4f}  {r['time_s']:5.1f} s wall, {r['cpu_s']:5.1f} s CPU "
                      f"(+{r['kernelgan_s']:.1f} s wall, {r['kernelgan_cpu_s']:.1f} s CPU KernelGAN)",
                      flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    hardware = device_name(resolve_device(cfg.device))
    OUT.write_text(json.dumps({"preset": "quick", "overrides": args.overrides, "hardware": hardware,
                               "threads": args.threads, "rows": rows}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
