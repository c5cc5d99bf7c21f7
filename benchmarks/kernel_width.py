"""Why KernelGAN-based methods lose to ``zssr`` on bicubic-degraded images: kernel width.

For each classic image (centre crop, x2, degraded as ``methods_quick.py`` does): the width of
KernelGAN's estimate next to the true kernel's, for MATLAB bicubic and for the image's DIV2KRK
kernel; what ZSSR (the post-KernelGAN configuration) scores on the bicubic LR image with isotropic
Gaussians of several widths, beside ``zssr`` and ``kernelgan-zssr``; after KernelGAN's run on the
bicubic LR image, its discriminator's verdict on the image downscaled with Gaussians of those
widths; and, as a candidate for a better estimate, the width the LR image's own cross-scale
statistics point to (``zssrgan.cross_scale``, the ``cross-scale`` estimator) with ZSSR's score given a Gaussian of that width, on
both degradations. ``--cue-only`` prints just that width against the truth (no training, seconds).
Width: the RMS of the two axes' standard deviations of the kernel's positive part (sigma for an
isotropic Gaussian).
Prints a table and writes benchmarks/out/kernel_width.json (``kernel_width_cue.json`` with
``--cue-only``).

    .venv/bin/python benchmarks/kernel_width.py --threads 1 [--images bird,baby,woman|all] [--cue-only]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from methods_quick import CLASSIC, HERE, centre_crop, degradations
from zssrgan.config import apply_overrides, preset
from zssrgan.device import device_name, resolve_device, set_threads
from zssrgan.io import load_image
from zssrgan.cross_scale import cross_scale_sigma
from zssrgan.kernels import isotropic_gaussian, kernel_width
from zssrgan.methods import run_method
from zssrgan.metrics import evaluate, kernel_error
from zssrgan.archs.kernelgan_arch import generate
from zssrgan.train.kernelgan import KernelGANTrainer, estimate_kernel

OUT = HERE / "out" / "kernel_width.json"
CUE_OUT = HERE / "out" / "kernel_width_cue.json"


def discriminator_scores(trainer: KernelGANTrainer, sigmas: list[float], steps: int = 200) -> dict:
    """D's mean output (1 = real) on real crops and on G's input crops downscaled by isotropic
    Gaussians of each sigma, over ``steps`` of the run's crops: does D's verdict depend on the kernel?"""
    real, fake = [], {s: [] for s in sigmas}
    kernels = {s: torch.as_tensor(isotropic_gaussian(13, s), dtype=torch.float32, device=trainer.device)
               for s in sigmas}
    with torch.no_grad():
        for i in range(steps):
            crops = trainer.g_input(i)[0]
            for s, kernel in kernels.items():
                values = trainer.d_loss(i, trainer.to_discriminator(generate(crops, kernel)))
                fake[s].append(float(values["loss_d_fake"]))  # mean D(fake): 0 = judged fake
            real.append(1.0 - float(values["loss_d_real"]))
    return {"real": float(np.mean(real)), "fake": {s: float(np.mean(v)) for s, v in fake.items()}}


def cue_table(names: list[str], size: int) -> list[dict]:
    """``cross_scale_sigma`` against the true width for both degradations of each image."""
    rows = []
    for name in names:
        degraded = degradations(centre_crop(load_image(CLASSIC / f"{name}.png"), size), name)
        row = {"image": name, **{f"{label}_{key}": value for label, (lr, kernel) in degraded.items()
                                 for key, value in (("true_width", kernel_width(kernel)),
                                                    ("cross_scale_sigma", cross_scale_sigma(lr)[0]))}}
        rows.append(row)
        print(f"{name:10s} bicubic: true {row['bicubic_true_width']:.2f}, cue {row['bicubic_cross_scale_sigma']:.2f} "
              f"| DIV2KRK: true {row['div2krk_true_width']:.2f}, cue {row['div2krk_cross_scale_sigma']:.2f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="bird,baby,woman", help="comma-separated names, or all")
    parser.add_argument("--size", type=int, default=200, help="HR crop side (default 200)")
    parser.add_argument("--sigmas", default="0.6,0.8,1.0,1.2,1.4", help="Gaussian widths given to ZSSR")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--cue-only", action="store_true",
                        help="only the cross-scale width against the truth (no training)")
    args = parser.parse_args()
    names = sorted(p.stem for p in CLASSIC.glob("*.png")) if args.images == "all" else args.images.split(",")
    if args.cue_only:
        rows = cue_table(names, args.size)
        CUE_OUT.parent.mkdir(parents=True, exist_ok=True)
        CUE_OUT.write_text(json.dumps({"size": args.size, "rows": rows}, indent=1))
        print(f"wrote {CUE_OUT}")
        return
    cfg = apply_overrides(preset(args.preset), args.overrides)
    if args.threads:
        set_threads(args.threads)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    rows = []
    for name in names:
        hr = centre_crop(load_image(CLASSIC / f"{name}.png"), args.size)
        degraded = degradations(hr, name)
        lr, bicubic = degraded["bicubic"]
        trainer = KernelGANTrainer(lr, cfg.kernelgan, device=resolve_device(cfg.device),
                                   rng=np.random.default_rng(cfg.seed), real=cfg.real)
        trainer.train()
        estimate = trainer.estimate()
        div2krk_lr, div2krk = degraded["div2krk"]
        div2krk_estimate = estimate_kernel(div2krk_lr, scale=2, cfg=cfg)

        def score(method: str, kernel: np.ndarray | None = None, image: np.ndarray = lr,
                  given: object = estimate) -> float:
            result = run_method(method, image, 2, cfg, kernels=None if kernel is None else {2: kernel},
                                estimate=given if method == "kernelgan-zssr" else None)
            return evaluate(result.sr, image, 2, gt=hr)["psnr_y"]

        cue, div2krk_cue = cross_scale_sigma(lr)[0], cross_scale_sigma(div2krk_lr)[0]

        row = {"image": name, "true_width": kernel_width(bicubic), "kernelgan_width": kernel_width(estimate.kernels[2]),
               "kernel_error": kernel_error(estimate.kernels[2], bicubic), "cross_scale_sigma": cue,
               "div2krk_true_width": kernel_width(div2krk), "div2krk_kernelgan_width": kernel_width(div2krk_estimate.kernels[2]),
               "zssr": score("zssr"), "kernelgan-zssr": score("kernelgan-zssr"),
               "gaussian": {s: score("zssr-oracle", isotropic_gaussian(13, s)) for s in sigmas},
               "discriminator": discriminator_scores(trainer, sigmas),
               "cue_gaussian": score("zssr-oracle", isotropic_gaussian(13, cue)),
               "div2krk_cross_scale_sigma": div2krk_cue,
               "div2krk_zssr": score("zssr", image=div2krk_lr),
               "div2krk_kernelgan-zssr": score("kernelgan-zssr", image=div2krk_lr, given=div2krk_estimate),
               "div2krk_cue_gaussian": score("zssr-oracle", isotropic_gaussian(13, div2krk_cue), image=div2krk_lr)}
        rows.append(row)
        print(f"{name:9s} width: bicubic {row['true_width']:.2f}, KernelGAN {row['kernelgan_width']:.2f} "
              f"(error {row['kernel_error']:.3f}); DIV2KRK kernel {row['div2krk_true_width']:.2f}, KernelGAN "
              f"{row['div2krk_kernelgan_width']:.2f} | PSNR-Y: "
              f"zssr {row['zssr']:.2f}, kernelgan-zssr {row['kernelgan-zssr']:.2f}, ZSSR with Gaussian "
              + ", ".join(f"{s:g}: {p:.2f}" for s, p in row["gaussian"].items())
              + f" | D: real crops {row['discriminator']['real']:.3f}, downscaled with sigma "
              + ", ".join(f"{s:g}: {p:.3f}" for s, p in row["discriminator"]["fake"].items())
              + f" | cross-scale sigma: bicubic LR {cue:.2f} (ZSSR {row['cue_gaussian']:.2f}), DIV2KRK LR "
              f"{div2krk_cue:.2f} (ZSSR {row['div2krk_cue_gaussian']:.2f}; zssr {row['div2krk_zssr']:.2f}, "
              f"kernelgan-zssr {row['div2krk_kernelgan-zssr']:.2f})", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"preset": args.preset, "overrides": args.overrides, "threads": args.threads,
                               "size": args.size, "sigmas": sigmas,
                               "hardware": device_name(resolve_device(cfg.device)), "rows": rows}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
