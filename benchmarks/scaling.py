"""Runner scaling: driver overhead per job, throughput with 1 vs 2 workers, driver memory for a
queue of 20,000 jobs. Prints a table and writes benchmarks/out/scaling.json.

    python benchmarks/scaling.py [--quick]

Overhead: marginal wall time per trivial job (bicubic on a 24x24 image, one worker, tracked in a
sqlite store) between a short and a long sweep, so Ray and actor start-up cancel out, minus the
time the job itself spends in the worker. Throughput: the same sweep of short ZSSR jobs on one and
on two workers of a local Ray with two CPUs, counted from the first job's dispatch to the last
result (actor start-up left out). Memory: tracemalloc of expanding (and holding) a sweep
of 20,000 jobs, which hold paths, not pixels.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import ray

from cluster.driver import run_sweep
from cluster.jobs import SweepSpec, expand
from cluster.runs import load_runs
from zssrgan.device import cpu_model
from zssrgan.io import save_image

OUT = Path(__file__).resolve().parent / "out"
TINY_ZSSR = ["zssr.iters=50", "zssr.crop=24"]


def make_images(folder: Path, count: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        save_image(folder / f"im_{i:05d}.png", rng.random((size, size, 3)))
    return folder


def timed_sweep(spec: SweepSpec) -> tuple[float, dict]:
    start = time.perf_counter()
    summary = run_sweep(spec)
    if summary["finished"] != summary["jobs"]:
        raise RuntimeError(f"benchmark sweep did not finish every job: {summary}")
    return time.perf_counter() - start, summary


def overhead(root: Path, short: int, long: int) -> dict:
    walls = {}
    for n in (short, long):
        images = make_images(root / f"tiny{n}", n, 24)
        spec = SweepSpec([str(images)], ["bicubic"], workers=1, progress=False,
                         tracking_uri=f"sqlite:///{root / f'overhead{n}.db'}")
        walls[n], _ = timed_sweep(spec)
    runs = load_runs(f"sqlite:///{root / f'overhead{long}.db'}", "zssrgan")
    in_worker = float((runs["metrics.time_total"] + runs["metrics.time_load"] + runs["metrics.time_metrics"]).mean())
    per_job = (walls[long] - walls[short]) / (long - short)
    return {"jobs_short": short, "jobs_long": long, "wall_short_s": walls[short], "wall_long_s": walls[long],
            "wall_per_job_s": per_job, "in_worker_per_job_s": in_worker, "driver_overhead_per_job_s": per_job - in_worker}


def throughput(root: Path, jobs: int) -> dict:
    images = make_images(root / "small", jobs, 40)
    out = {}
    for workers in (1, 2):
        uri = f"sqlite:///{root / f'throughput{workers}.db'}"
        spec = SweepSpec([str(images)], ["zssr"], preset="quick", overrides=TINY_ZSSR, workers=workers,
                         progress=False, tracking_uri=uri)
        wall, _ = timed_sweep(spec)
        runs = load_runs(uri, "zssrgan")
        window = (runs.end_time.max() - runs.start_time.min()).total_seconds()  # first dispatch to last result
        out[f"jobs_per_min_{workers}_workers"] = jobs / window * 60
        out[f"sweep_wall_{workers}_workers_s"] = wall
        out[f"job_seconds_{workers}_workers"] = float(runs["metrics.time_total"].mean())  # slows under contention
    out["jobs"] = jobs
    out["speedup_2_vs_1"] = out["jobs_per_min_2_workers"] / out["jobs_per_min_1_workers"]
    return out


def memory(root: Path) -> dict:
    images = make_images(root / "many", 100, 8)
    spec = SweepSpec([str(images)], ["bicubic", "zssr", "kernelgan-zssr", "zssrgan-fixed", "zssrgan-e2e"],
                     scales=[2, 4], seeds=[0, 1], grid={"zssrgan.disc_ratio": [str(r / 10) for r in range(10)]})
    tracemalloc.start()
    start = time.perf_counter()
    sweep = expand(spec)
    seconds = time.perf_counter() - start
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"jobs": len(sweep.jobs), "expand_s": seconds, "held_mib": held / 2**20, "peak_mib": peak / 2**20,
            "bytes_per_job": held / len(sweep.jobs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs (a smoke test of the script)")
    args = parser.parse_args()
    short, long, jobs = (5, 15, 4) if args.quick else (10, 50, 12)
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="zssrgan-scaling-") as tmp:
            root = Path(tmp)
            results = {"cpu": cpu_model(), "memory_20k_jobs": memory(root), "overhead": overhead(root, short, long),
                       "throughput": throughput(root, jobs)}
    finally:
        ray.shutdown()
    OUT.mkdir(exist_ok=True)
    (OUT / "scaling.json").write_text(json.dumps(results, indent=2))
    rows = [(f"{section}.{k}", v) for section, values in results.items() if isinstance(values, dict)
            for k, v in values.items()]
    print(f"CPU: {results['cpu']}")
    for name, value in rows:
        print(f"{name:<48} {value:>12.4g}" if isinstance(value, float) else f"{name:<48} {value:>12}")
    print(f"-> {OUT / 'scaling.json'}")


if __name__ == "__main__":
    main()
