"""Every kernel estimator of the table, against the truth: the reference cases (degraded images with
their true kernels) and the classic images degraded two ways (a DIV2KRK-protocol kernel and MATLAB
bicubic, as ``methods_quick.py`` does). Per estimate: kernel error (shift-invariant relative,
``zssrgan.metrics.kernel_error``), width against the true width (``zssrgan.kernels.kernel_width``),
whether it failed its check (collapsed) and seconds. A fixed guess, the 13x13 isotropic Gaussian of
sigma 1.7, stands beside them in every table: an estimator that does not beat it adds nothing.

    .venv/bin/python benchmarks/estimators.py --threads 1 [--estimators kernelgan,cross-scale]
        [--cases reference,div2krk,bicubic] [--images all|baby,bird] [--size 400] [--seeds 0,1,2]
        [--preset quick] [--set KEY=VALUE] [--out FILE.json]

Prints one table per case set and writes benchmarks/out/estimators.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from methods_quick import CLASSIC, HERE, centre_crop, degradations
from zssrgan.config import apply_overrides, preset, set_value
from zssrgan.device import device_name, resolve_device, set_threads
from zssrgan.estimators import ESTIMATORS, EstimateFailed, run_estimator
from zssrgan.io import load_image
from zssrgan.kernels import isotropic_gaussian, kernel_width
from zssrgan.metrics import kernel_error

REFERENCE = HERE / "data" / "kernelgan_reference"
OUT = HERE / "out" / "estimators.json"
FIXED_GUESS = ("fixed sigma 1.7", isotropic_gaussian(13, 1.7))


def cases(which: list[str], names: list[str], size: int) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(case set, image, LR image, true x2 kernel) for each requested set."""
    out = []
    if "reference" in which:
        for path in sorted((REFERENCE / "lr_x2").glob("*.png")):
            out.append(("reference", path.stem, load_image(path),
                        np.load(REFERENCE / "gt_k_x2" / f"{path.stem}.npy", allow_pickle=False)))
    for name in names:
        if {"div2krk", "bicubic"} & set(which):
            degraded = degradations(centre_crop(load_image(CLASSIC / f"{name}.png"), size), name)
            out += [(label, name, lr, kernel) for label, (lr, kernel) in degraded.items() if label in which]
    return out


def measure(estimator: str, lr: np.ndarray, truth: np.ndarray, cfg) -> dict:
    start = time.perf_counter()
    try:
        estimate, failed = run_estimator(lr, 2, set_value(cfg, "estimator", estimator)), ""
    except EstimateFailed as exc:
        estimate, failed = None, str(exc)
    seconds = time.perf_counter() - start
    if estimate is None:
        return {"failed": failed, "seconds": seconds}
    return {"error": kernel_error(estimate.kernels[2], truth), "width": kernel_width(estimate.kernels[2]),
            "failed": "", "seconds": seconds, "diagnostics": estimate.diagnostics}


def summarise(rows: list[dict], labels: list[str]) -> dict:
    """Per case set and estimator: mean error, wins over the fixed guess, rank correlation of the
    widths with the true widths, failures, mean seconds."""
    summary = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        for label in labels:
            mine = [r for r in rows if r["case"] == case and r["estimator"] == label]
            ok = [r for r in mine if not r["failed"]]
            guess = {(r["image"], r["seed"]): r["error"] for r in rows
                     if r["case"] == case and r["estimator"] == FIXED_GUESS[0]}
            widths, truths = [r["width"] for r in ok], [r["true_width"] for r in ok]
            varied = len(ok) > 2 and np.ptp(widths) > 0 and np.ptp(truths) > 0
            rho = stats.spearmanr(widths, truths)[0] if varied else None
            summary[f"{case}/{label}"] = {
                "case": case, "estimator": label, "runs": len(mine), "failed": len(mine) - len(ok),
                "mean_error": float(np.mean([r["error"] for r in ok])) if ok else None,
                "beats_fixed_guess": sum(r["error"] < guess[r["image"], r["seed"]] for r in ok),
                "width_rank_correlation": None if rho is None or np.isnan(rho) else float(rho),
                "mean_width": float(np.mean([r["width"] for r in ok])) if ok else None,
                "mean_true_width": float(np.mean([r["true_width"] for r in mine])),
                "mean_seconds": float(np.mean([r["seconds"] for r in mine])),
            }
    return summary


def print_summary(summary: dict) -> None:
    header = (f"{'case':<10}{'estimator':<18}{'runs':>5}{'failed':>7}{'mean error':>11}{'< guess':>8}"
              f"{'width rho':>10}{'width':>7}{'truth':>7}{'s/estimate':>11}")
    print(header)
    for s in summary.values():
        def f(value, fmt):
            return format(value, fmt) if value is not None else "-"
        print(f"{s['case']:<10}{s['estimator']:<18}{s['runs']:>5}{s['failed']:>7}{f(s['mean_error'], '.3f'):>11}"
              f"{s['beats_fixed_guess']:>8}{f(s['width_rank_correlation'], '.2f'):>10}{f(s['mean_width'], '.2f'):>7}"
              f"{s['mean_true_width']:>7.2f}{s['mean_seconds']:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimators", default=",".join(ESTIMATORS), help="comma-separated (default: all)")
    parser.add_argument("--cases", default="reference,div2krk,bicubic", help="reference, div2krk, bicubic")
    parser.add_argument("--images", default="baby,bird,woman,baboon",
                        help="classic images for the div2krk and bicubic cases, or all")
    parser.add_argument("--size", type=int, default=400, help="HR centre crop (default 400: 200-px LR)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(OUT), help=f"the JSON to write (default {OUT.relative_to(HERE)})")
    args = parser.parse_args()
    set_threads(args.threads)
    cfg = apply_overrides(preset(args.preset), [*args.overrides, "device=cpu"])
    names = sorted(p.stem for p in CLASSIC.glob("*.png")) if args.images == "all" else args.images.split(",")
    estimators = args.estimators.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for case, name, lr, truth in cases(args.cases.split(","), names, args.size):
        true_width = kernel_width(truth)
        for seed in seeds:
            rows.append({"case": case, "image": name, "seed": seed, "estimator": FIXED_GUESS[0], "failed": "",
                         "error": kernel_error(FIXED_GUESS[1], truth), "width": kernel_width(FIXED_GUESS[1]),
                         "true_width": true_width, "seconds": 0.0})
            for estimator in estimators:
                row = {"case": case, "image": name, "seed": seed, "estimator": estimator, "true_width": true_width,
                       **measure(estimator, lr, truth, set_value(cfg, "seed", seed))}
                rows.append(row)
                result = f"FAILED ({row['failed']})" if row["failed"] else \
                    f"error {row['error']:.3f}, width {row['width']:.2f}"
                print(f"{case:<10}{name:<10}seed {seed} {estimator:<14} {result} (truth {true_width:.2f}, "
                      f"{row['seconds']:.1f} s)", flush=True)
    summary = summarise(rows, [FIXED_GUESS[0], *estimators])
    hardware = device_name(resolve_device("cpu"))
    print(f"\n{hardware}, {args.threads} thread(s), preset {args.preset}")
    print_summary(summary)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"hardware": hardware, "threads": args.threads, "preset": args.preset,
                               "overrides": args.overrides, "size": args.size, "seeds": seeds,
                               "summary": summary, "rows": rows}, indent=1, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
