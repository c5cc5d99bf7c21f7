"""Speed on this hardware: seconds per method per image and per training phase (as the workers
measured them, CPU or CUDA), and images per hour for the whole comparison (every method plus the
shared KernelGAN estimate). Runs the methods through the sweep runner in a fresh local store;
prints a table and writes benchmarks/out/speed.json.

    .venv/bin/python benchmarks/speed.py --images 3 --preset quick
    .venv/bin/python benchmarks/speed.py --images 3 --preset paper --workers 1

Takes the same dataset options as benchmarks/quality.py. ``--workers 1`` gives undisturbed
per-job times; more workers give the machine's throughput.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

from quality import add_dataset_arguments, hardware, run_benchmark, write_json  # puts the checkout on sys.path

from cluster.runs import load_runs
from zssrgan.report.tables import method_order

_NOT_PHASES = ("time_total", "time_queue_wait")


def per_method(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean seconds per image of each method and scale: total, every phase, iterations per second."""
    done = runs[runs["status"] == "FINISHED"].rename(columns=lambda c: c.removeprefix("metrics."))
    phases = sorted(c for c in done.columns if c.startswith("time_") and c not in _NOT_PHASES)
    done = done.assign(method=done["tags.zssrgan.method"], scale=done["tags.zssrgan.scale"].astype(int))
    columns = [c for c in ("time_total", *phases, "its_per_sec") if c in done.columns]
    table = done.groupby(["method", "scale"])[columns].mean()
    table.insert(0, "n", done.groupby(["method", "scale"]).size())
    table = table.reset_index()
    order = table["method"].map({m: i for i, m in enumerate(method_order(table["method"]))})
    return table.assign(_order=order).sort_values(["scale", "_order"]).drop(columns="_order")


def throughput(table: pd.DataFrame, images: int, wall_seconds: float) -> dict[int, dict[str, float]]:
    """Per scale: compute seconds per image for the whole comparison (sum of the method means, the
    estimate counted once), the images per hour of one worker, and the measured images per hour of
    the whole sweep (all workers, Ray start included)."""
    out = {}
    for scale, rows in table.groupby("scale"):
        seconds = float(rows["time_total"].sum())
        out[int(scale)] = {"seconds_per_image": seconds, "images_per_hour_one_worker": 3600.0 / seconds,
                           "images_per_hour_measured": 3600.0 * images / wall_seconds}
    return out


def _format(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in shown.columns[3:]:
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    shown.columns = [c.removeprefix("time_") for c in shown.columns]
    return shown.to_string(index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser, images=3, folder="speed")
    args = parser.parse_args()
    device = hardware()
    summary, uri, _ = run_benchmark(args, "speed")
    runs = load_runs(uri, "speed", summary["sweep_id"])
    table = per_method(runs)
    images = runs["tags.zssrgan.image"].nunique()
    rates = throughput(table, images, summary["seconds"])
    print(f"\n{device}: seconds per image (means over {images} images; phases as the workers timed them)")
    print(_format(table))
    for scale, rate in rates.items():
        print(f"x{scale}: whole comparison {rate['seconds_per_image']:.1f} s per image = "
              f"{rate['images_per_hour_one_worker']:.1f} images/hour on one worker; "
              f"measured {rate['images_per_hour_measured']:.1f} images/hour for this sweep "
              f"({summary['seconds']:.0f} s wall, Ray start included)")
    path = write_json("speed", {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "device": device, "preset": args.preset, "overrides": args.overrides, "workers": args.workers,
        "dataset": args.data or f"{args.make_from} ({args.protocol})", "images": images, "size": args.size,
        "methods": table.to_dict(orient="records"), "throughput": rates, "wall_seconds": summary["seconds"],
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
