"""What a GPU changes, measured in one command; without a GPU, a reduced CPU version of the same.

    python benchmarks/device_check.py [--out DIR] [--budget SECONDS] [--cpu]      (make device-check)

The parts run in order, each with a share of ``--budget`` (290 s with a GPU, 110 s without) in
proportion to its weight; time a part leaves unused goes to the later ones. What would not fit in
its share is skipped, and a training loop still running at its deadline is stopped; both say so in
the output. A part that fails records its error and the others go on (exit status 1).

1. ``environment``: GPU, memory, driver, torch, CUDA; ``cuda_tests``: ``pytest -m cuda``.
2. ``kernelgan_step``: KernelGAN ms per step on the CPU and CUDA: the production step, the same
   with the layer-by-layer generator, and the literal published-architecture step
   (benchmarks/kernelgan_speed.py), timed in alternating blocks.
3. ``estimators``: ms per iteration of each kernel estimator (zssrgan.estimators) on the CPU and CUDA.
4. ``zssr_precision``: ZSSR ms per iteration in fp32, bf16 autocast, channels-last and both, with
   the PSNR of each output against fp32's on the same image and seed.
5. ``comparison``: every method at ``paper``, x2, on one classic image degraded with a DIV2KRK-
   protocol kernel: seconds per method and per phase, peak GPU memory per job.
6. ``packing``: a sweep through the runner (a temporary MLflow store) with 1, 2, 4 and 8 jobs
   per GPU: images per hour and GPU utilisation (sampled in a thread) for each.

ms per iteration is the marginal cost between a short and a longer run after a warm-up run, so
set-up, post-processing and one-time costs (CUDA kernels loading, cuDNN choosing algorithms)
cancel (benchmarks/timekeeping.py). Writes device_check.json and device_check.md into ``--out``
after every part.
Without a GPU, or with ``--cpu``, every part runs on the CPU at reduced sizes (the CPU version).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from cluster.driver import run_sweep  # noqa: E402
from cluster.jobs import SweepSpec  # noqa: E402
from cluster.records import git_commit, package_versions  # noqa: E402
from cluster.runs import load_runs  # noqa: E402
from zssrgan import metrics  # noqa: E402
from zssrgan.config import Config, apply_overrides, flatten, parse_assignment, preset, set_value  # noqa: E402
from zssrgan.device import cpu_model, set_threads  # noqa: E402
from zssrgan.io import load_image, save_image  # noqa: E402
from zssrgan.estimators import ESTIMATORS, EstimateFailed, run_estimator  # noqa: E402
from zssrgan.methods import METHODS, run_method  # noqa: E402
from zssrgan.progress import Callback, History  # noqa: E402
from zssrgan.resize import imresize  # noqa: E402
from zssrgan.train.zssr import zssr_super_resolve  # noqa: E402

from kernelgan_speed import step_functions, synthetic_image, time_blocks  # noqa: E402  (sibling scripts)
from methods_quick import CLASSIC, centre_crop, degradations  # noqa: E402
from timekeeping import (Budget, Sampler, fair_share, guarded, interrupt_at, left, per_iteration,  # noqa: E402
                         stop_at, sync)

OUT = HERE / "out" / "device_check"
IMAGE = "bird"  # the classic image of the comparison: 288x288, so a 144x144 LR image at x2
VARIANTS = {  # ZSSR's (zssr.mixed_precision, zssr.channels_last)
    "fp32": (False, False), "bf16 autocast": (True, False), "channels-last": (False, True),
    "bf16 + channels-last": (True, True),
}
PACKING_METHOD = "kernelgan-zssr"  # an estimate job and a ZSSR job per image: the common pipeline
# tiny runs for the CPU version: every part's code path in about a minute on 2 cores. So few
# KernelGAN steps cannot end its bicubic phase, which fails a strict estimate: record it instead.
TINY = ("kernelgan.iters=40", "kernelgan.n_crop_positions=40", "zssr.iters=20", "zssr.crop=32",
        "strict_estimates=false")


@dataclass(frozen=True)
class Sizes:
    """How much work each part does: the full check on a GPU, or the reduced CPU version."""

    budget_s: float
    weights: tuple[tuple[str, float], ...]  # (part, share of the budget); the environment is not budgeted
    preset: str
    overrides: tuple[str, ...]
    step_image: tuple[int, int]  # the synthetic image of the KernelGAN step timing
    step_blocks: int
    block_steps: int
    estimator_iters: tuple[int, int]  # the short and the longer run of the marginal timing
    zssr_iters: tuple[int, int]
    hr_crop: Optional[int]  # HR centre crop of the comparison's image (None: the whole image)
    levels: tuple[int, ...]  # jobs per GPU (CPU version: workers of one CPU each), in the order run
    sweep_iters: int  # KernelGAN's and ZSSR's iterations per sweep job
    sweep_side: int  # LR side of the sweep's images


GPU_SIZES = Sizes(budget_s=290, weights=(("cuda_tests", 45), ("kernelgan_step", 15), ("estimators", 20),
                                         ("zssr_precision", 20), ("comparison", 115), ("packing", 75)),
                  preset="paper", overrides=(), step_image=(200, 300), step_blocks=3, block_steps=5,
                  estimator_iters=(50, 250), zssr_iters=(50, 250), hr_crop=None, levels=(1, 8, 4, 2),
                  sweep_iters=200, sweep_side=128)
CPU_SIZES = Sizes(budget_s=110, weights=(("cuda_tests", 25), ("kernelgan_step", 8), ("estimators", 8),
                                         ("zssr_precision", 10), ("comparison", 20), ("packing", 35)),
                  preset="quick", overrides=TINY, step_image=(96, 96), step_blocks=2, block_steps=2,
                  estimator_iters=(10, 30), zssr_iters=(5, 15), hr_crop=192, levels=(1, 2),
                  sweep_iters=20, sweep_side=96)
RESERVE_S = 10.0  # of the budget, for writing the results and stopping Ray (imports come before: 5 min in all)
MIN_LEVEL_S = 15.0  # the least time worth starting a packing level with (actors start, a few jobs)


def config(sizes: Sizes, device: torch.device, *overrides: str) -> Config:
    cfg = apply_overrides(preset(sizes.preset), [*sizes.overrides, *overrides])
    return set_value(cfg, "device", str(device))


def with_iters(cfg: Config, n: int) -> Config:
    """Every ``*.iters`` key of the tree capped at ``n``: a short run of any estimator's loop."""
    caps = {key: min(value, n) for key, value in flatten(cfg).items() if key.rsplit(".", 1)[-1] == "iters"}
    return apply_overrides(cfg, caps)


# --------------------------------------------------------------------------------------------
# the parts: each returns its results; notes (skips, stops) go into ``notes``


def environment(gpu: bool, threads: int) -> dict[str, Any]:
    env = {"mode": "GPU" if gpu else "CPU version (reduced sizes)", "cpu": cpu_model(), "cores": os.cpu_count(),
           "torch_threads": threads, "python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "packages": package_versions(), "git_commit": git_commit()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_count=torch.cuda.device_count(), gpu_memory_gib=props.total_memory / 2**30,
                   compute_capability=f"{props.major}.{props.minor}", bf16=torch.cuda.is_bf16_supported(),
                   cudnn=torch.backends.cudnn.version(), cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32, driver=_driver())
    return env


def _driver() -> Optional[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def cuda_tests(gpu: bool, deadline: float, notes: list[str]) -> dict[str, Any]:
    """``pytest -m cuda`` in a subprocess (its own session, stopped at the deadline)."""
    if importlib.util.find_spec("pytest") is None:
        notes.append("cuda tests not run: pytest is not installed (make device-check installs it)")
        return {"ran": False}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU version: the cuda tests see no GPU, as the rest
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"]
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=max(1.0, left(deadline)))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        notes.append(f"cuda tests stopped at their deadline after {time.monotonic() - start:.0f} s")
    lines = output.strip().splitlines()
    summary = lines[-1] if lines else ""
    if process.returncode == 5:
        notes.append("no test is marked cuda in this checkout")
    print("\n".join(lines[-15:]))
    return {"ran": True, "returncode": process.returncode, "summary": summary,
            "seconds": time.monotonic() - start, "tail": "\n".join(lines[-40:])}


def _synced(step: Callable[[int], object], device: torch.device) -> Callable[[int], None]:
    """The step followed by a device sync, so that wall time is the device's time too."""
    def run(i: int) -> None:
        step(i)
        sync(device)
    return run


def kernelgan_step(sizes: Sizes, devices: list[torch.device], deadline: float, notes: list[str]) -> dict[str, Any]:
    """ms per step of the three KernelGAN steps on each device, in alternating blocks."""
    image = synthetic_image(*sizes.step_image)
    out: dict[str, Any] = {"image": list(sizes.step_image)}
    for n, device in enumerate(devices):
        item_deadline = fair_share(deadline, len(devices) - n)
        cfg = config(sizes, device)
        steps = {name: _synced(step, device) for name, step in step_functions(image, cfg, device).items()}
        once = {}
        for name, step in steps.items():  # a warm-up step, then one timed: the cost of a block
            step(0)
            start = time.perf_counter()
            step(1)
            once[name] = time.perf_counter() - start
        round_s = sum(once.values())  # time_blocks: a warm-up round, then block_steps rounds per block
        blocks = min(sizes.step_blocks, int((left(item_deadline) - round_s) / (round_s * sizes.block_steps)))
        if blocks < 1:
            notes.append(f"KernelGAN steps on {device.type}: skipped, a block of each would not fit "
                         f"({round_s * 1e3:.0f} ms a round, {max(0, left(item_deadline)):.1f} s left)")
            continue
        if blocks < sizes.step_blocks:
            notes.append(f"KernelGAN steps on {device.type}: {blocks} of {sizes.step_blocks} blocks (deadline)")
        timed = time_blocks(steps, blocks, sizes.block_steps)
        out[device.type] = {name: {"wall_ms": t["wall"] * 1e3, "cpu_ms": t["cpu"] * 1e3} for name, t in timed.items()}
        out[device.type]["blocks"] = blocks
    return out


def estimators(sizes: Sizes, devices: list[torch.device], lr: np.ndarray, deadline: float,
               notes: list[str]) -> dict[str, Any]:
    """Every estimator of the table: ms per iteration of its training (none for a closed form)."""
    rows = []
    items = [(name, device) for name in ESTIMATORS for device in devices]
    for n, (name, device) in enumerate(items):
        base = config(sizes, device)

        def run(iters: int, callback: Callback, fn=ESTIMATORS[name].fn, cfg=base, device=device
                ) -> tuple[float, int, None]:
            start = time.perf_counter()
            estimate = fn(lr, 2, with_iters(cfg, iters), callback=callback)
            sync(device)
            return time.perf_counter() - start, sum(len(steps) for steps in estimate.history.values()), None

        row: dict[str, Any] = {"estimator": name, "device": device.type}
        rows.append(row)
        with guarded(row, notes, f"estimator {name} on {device.type}"):
            measured = per_iteration(run, sizes.estimator_iters, fair_share(deadline, len(items) - n))
            measured.pop("result")
            row.update(measured)
    return {"image": f"{IMAGE} (LR {lr.shape[0]}x{lr.shape[1]})", "rows": rows}


def zssr_precision(sizes: Sizes, device: torch.device, lr: np.ndarray, hr: np.ndarray, kernel: np.ndarray,
                   deadline: float, notes: list[str]) -> dict[str, Any]:
    """ZSSR (post-KernelGAN variant, true kernel) in each precision and memory format, same seed."""
    if device.type != "cuda":
        notes.append("ZSSR precision: bf16 autocast and channels-last act on CUDA only; on the CPU every row runs fp32")
    rows, reference = [], None
    runs = [*VARIANTS.items(), ("fp32, second run", VARIANTS["fp32"])]  # the run-to-run noise floor
    for n, (name, (amp, channels_last)) in enumerate(runs):
        cfg = config(sizes, device, f"zssr.mixed_precision={amp}", f"zssr.channels_last={channels_last}")

        def run(iters: int, callback: Callback, cfg=cfg) -> tuple[float, int, np.ndarray]:
            history = History(callback)
            sr, timings = zssr_super_resolve(lr, 2, {2: kernel}, set_value(cfg, "zssr.iters", iters),
                                             cfg.zssr.kernelgan, callback=history)
            return timings["zssr_x2_train"], len(history.curves["zssr_x2"]), sr

        row: dict[str, Any] = {"variant": name}
        rows.append(row)
        with guarded(row, notes, f"ZSSR {name}"):
            item_deadline = fair_share(deadline, len(runs) - n)
            if n == len(VARIANTS):  # the second fp32 run: only its output is needed
                sr = run(sizes.zssr_iters[1], stop_at(item_deadline))[2]
            else:
                measured = per_iteration(run, sizes.zssr_iters, item_deadline)
                sr = measured.pop("result")
                row.update(measured)
            reference = sr if name == "fp32" else reference
            if reference is not None:
                row["psnr_vs_fp32"] = metrics.psnr(sr, reference)
            row["psnr_y"] = metrics.evaluate(sr, lr, 2, gt=hr)["psnr_y"]
    fp32 = rows[0].get("ms_per_iteration")
    for row in rows:
        if fp32 and row.get("ms_per_iteration"):
            row["speedup_vs_fp32"] = fp32 / row["ms_per_iteration"]
    return {"device": device.type, "iters": list(sizes.zssr_iters), "rows": rows}


def _peak_mib(device: torch.device) -> Optional[float]:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def estimate_job(cfg: Config) -> str:
    """The comparison's shared estimate, a job of its own as in a sweep."""
    return f"estimate ({cfg.estimator})"


def comparison(sizes: Sizes, device: torch.device, lr: np.ndarray, hr: np.ndarray, kernel: np.ndarray,
               deadline: float, notes: list[str]) -> dict[str, Any]:
    """The shared estimate, then every method, one at a time as a worker runs them. Each job may
    use what is left but a reserve for each job after it, so a slow one cannot starve the rest."""
    cfg = config(sizes, device)
    jobs = [estimate_job(cfg), *METHODS]
    reserve = max(0.0, left(deadline)) * 0.05
    rows, estimate = [], None
    for n, job in enumerate(jobs):
        row: dict[str, Any] = {"job": job}
        rows.append(row)
        uses_estimate = job in METHODS and METHODS[job].shares_estimate
        if uses_estimate and estimate is None:
            row["stopped"] = "skipped: no shared estimate (see its row)"
            notes.append(f"comparison, {job}: {row['stopped']}")
            continue
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        callback = stop_at(deadline - reserve * (len(jobs) - n - 1))
        start = time.perf_counter()
        with guarded(row, notes, f"comparison, {job}"):
            if job not in METHODS:  # with a discriminator, as the runner's estimate job when methods need one
                timings, sr = {}, None
                try:
                    estimate = run_estimator(lr, 2, cfg, callback=callback, discriminator=True)
                    timings = estimate.timings
                except EstimateFailed as failure:  # a finding, as in a sweep: the methods that need it skip
                    row["estimate_failed"] = str(failure)
                    notes.append(f"comparison, {job}: {failure}")
            else:
                result = run_method(job, lr, 2, cfg, kernels={2: kernel},
                                    estimate=estimate if uses_estimate else None, callback=callback)
                timings, sr = result.timings, result.sr
            sync(device)
            row["phases"] = timings
            if sr is not None:
                row["psnr_y"] = metrics.evaluate(sr, lr, 2, gt=hr)["psnr_y"]
        row.update(seconds=time.perf_counter() - start, peak_gpu_mib=_peak_mib(device))
    return {"device": device.type, "preset": sizes.preset, "overrides": list(sizes.overrides),
            "image": f"{IMAGE}, DIV2KRK-protocol x2 (LR {lr.shape[0]}x{lr.shape[1]})", "rows": rows}


def sweep_images(folder: Path, count: int, side: int) -> list[str]:
    """``count`` LR images of ``side`` px: bicubic x2 downscales of the classic images' centres
    (mirrored on a second pass through them)."""
    sources = sorted(CLASSIC.glob("*.png"))
    paths = []
    for i in range(count):
        hr = centre_crop(load_image(sources[i % len(sources)]), 2 * side)
        lr = np.clip(imresize(hr if i < len(sources) else hr[:, ::-1], scale=0.5), 0.0, 1.0)
        paths.append(str(save_image(folder / f"im{i:02d}.png", lr)))
    return paths


def packing(sizes: Sizes, gpu: bool, deadline: float, notes: list[str]) -> dict[str, Any]:
    """kernelgan-zssr on 2 images per job slot, through the runner, at each packing level."""
    import ray

    method = PACKING_METHOD
    settings = dict(map(parse_assignment, sizes.overrides))
    # short jobs that measure throughput: their estimates stop before KernelGAN's schedule can end
    settings.update({"kernelgan.iters": str(sizes.sweep_iters), "zssr.iters": str(sizes.sweep_iters),
                     "strict_estimates": "false"})
    overrides = [f"{key}={value}" for key, value in settings.items()]
    if gpu:
        torch.cuda.empty_cache()  # what earlier parts cached is the workers' to use now
    else:
        notes.append("packing on the CPU: each level is that many workers of one CPU each, no GPU")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # workers
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="zssrgan-device-check-") as tmp:
        root = Path(tmp)
        images = sweep_images(root / "images", 2 * max(sizes.levels), sizes.sweep_side)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        sampler = Sampler(gpu)
        # a Ray of its own ("local": not one another program started on this machine), which the runner reuses
        ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=1 if gpu else 0, include_dashboard=False,
                 logging_level="WARNING", log_to_driver=False)
        sampler.start()
        try:
            cpus = ray.cluster_resources().get("CPU", 0)
            for i, level in enumerate(sizes.levels):
                row: dict[str, Any] = {"jobs_per_gpu": level, "gpus_per_job": 1 / level if gpu else 0}
                rows.append(row)
                if level > cpus:
                    row["stopped"] = f"skipped: {level} workers of one CPU do not fit {cpus:g} CPUs"
                    notes.append(f"packing, {level} jobs: {row['stopped']}")
                    continue
                if left(deadline) < MIN_LEVEL_S:
                    row["stopped"] = f"skipped: {max(0, left(deadline)):.0f} s left"
                    notes.append(f"packing, {level} jobs: {row['stopped']}")
                    continue
                # the later levels' minimum kept back, as long as this one gets its own
                later = MIN_LEVEL_S * (len(sizes.levels) - i - 1)
                level_deadline = min(deadline, max(deadline - later, time.monotonic() + MIN_LEVEL_S))
                with guarded(row, notes, f"packing, {level} jobs"):
                    row.update(_level(level, gpu, images[:2 * level], overrides, sizes.preset, uri, level_deadline,
                                      sampler))
                if "stopped" in row:
                    notes.append(f"packing, {level} jobs: {row['stopped']}")
                if "failed_jobs" in row:
                    notes.append(f"packing, {level} jobs: {row['failed_jobs']} jobs failed, e.g. {row['first_error']}")
        finally:
            sampler.halt.set()
            ray.shutdown()
    if sampler.error:
        notes.append(f"utilisation sampler stopped: {sampler.error}")
    rows.sort(key=lambda row: row["jobs_per_gpu"])
    base = rows[0].get("images_per_hour") if rows and rows[0]["jobs_per_gpu"] == 1 else None
    for row in rows:
        if base and row.get("images_per_hour"):
            row["throughput_vs_one"] = row["images_per_hour"] / base
    return {"method": method, "preset": sizes.preset, "overrides": overrides, "sampler": sampler.source,
            "image_side": sizes.sweep_side, "rows": rows}


def _level(level: int, gpu: bool, images: list[str], overrides: list[str], preset_name: str, uri: str,
           deadline: float, sampler: Sampler, method: str = PACKING_METHOD) -> dict[str, Any]:
    """One sweep of ``images`` through ``method`` with ``level`` workers; its figures from the runs
    it recorded (an image is done when its ``method`` run is)."""
    experiment = f"pack{level}"
    spec = SweepSpec(data=images, methods=[method], preset=preset_name, overrides=overrides,
                     experiment=experiment, tracking_uri=uri, gpus_per_job=1 / level if gpu else 0.0,
                     cpus_per_job=1.0, workers=level, progress=False, max_retries=0)
    out: dict[str, Any] = {"images": len(images)}
    wall, fired = time.monotonic(), threading.Event()
    try:
        with interrupt_at(deadline, fired):
            summary = run_sweep(spec)
    except KeyboardInterrupt:
        if not fired.is_set():
            raise
        summary = {"status": "KILLED"}
    out["sweep_wall_s"] = time.monotonic() - wall
    if summary.get("status") == "KILLED":
        out["stopped"] = "stopped at its deadline (running jobs KILLED)"
    runs = load_runs(uri, experiment)
    done, failed = runs[runs["status"] == "FINISHED"], runs[runs["status"] == "FAILED"]
    if len(failed):
        out.update(failed_jobs=len(failed), first_error=failed["tags.zssrgan.error"].iloc[0])
    if done.empty:
        return {**out, "finished_images": 0}
    first, last = runs["start_time"].min(), done["end_time"].max()
    window = (last - first).total_seconds()  # first job started to last job ended: actor start-up left out
    finished = int((done["tags.zssrgan.method"] == method).sum())
    job_seconds = done.groupby("tags.zssrgan.method")["metrics.time_total"].mean()
    out.update(finished_images=finished, window_s=window,
               images_per_hour=3600.0 * finished / window if finished and window > 0 else None,
               job_seconds={k: float(v) for k, v in job_seconds.items()},
               **sampler.window(first.timestamp(), last.timestamp()))
    return out


# --------------------------------------------------------------------------------------------
# output


def _has_error(value: Any) -> bool:
    if isinstance(value, dict):
        return "error" in value or any(_has_error(v) for v in value.values())
    return isinstance(value, list) and any(_has_error(v) for v in value)


def _finite(value: Any) -> Any:
    """JSON has no inf or NaN: None (a PSNR of identical images is inf, said in the Markdown)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "identical" if value == math.inf else f"{value:.{digits}g}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_num(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    parts, env = report["parts"], report["parts"].get("environment", {}).get("result", {})
    hardware = env.get("gpu") or f"{env.get('cpu')} ({env.get('cores')} cores)"
    out = [f"# Device check: {hardware}", "", f"`{report['command']}`: {env.get('mode')}, budget "
           f"{report['budget_s']:.0f} s, took {report.get('elapsed_s', 0):.0f} s.", ""]
    out += ["## Environment", "", _table(["", ""], [[k, v] for k, v in env.items() if k != "packages"]), ""]
    out += [f"- {note}" for note in parts.get("environment", {}).get("notes", [])]
    for name, part in parts.items():
        if name == "environment":
            continue
        out += [f"## {name.replace('_', ' ')}", ""]
        result = part.get("result")
        if result is not None:
            out += [FORMATTERS[name](result), ""]
        out += [f"- {note}" for note in part.get("notes", [])]
        if "error" in part:
            out += [f"- **failed**: {part['error']}"]
        out += [f"- {part.get('seconds', 0):.1f} s", ""]
    return "\n".join(out)


def _md_tests(r: dict) -> str:
    return f"`pytest -m cuda`: {r.get('summary') or 'not run'}"


def _md_steps(r: dict) -> str:
    devices = [d for d in ("cpu", "cuda") if d in r]
    names = [name for name in (r[devices[0]] if devices else []) if name != "blocks"]
    rows = [[name, *(r[d][name]["wall_ms"] for d in devices),
             *(r[d]["literal"]["wall_ms"] / r[d][name]["wall_ms"] for d in devices)] for name in names]
    if len(devices) == 2:
        for row, name in zip(rows, names):
            row.append(r["cpu"][name]["wall_ms"] / r["cuda"][name]["wall_ms"])
    headers = ["step", *(f"{d} ms" for d in devices), *(f"x vs literal ({d})" for d in devices)]
    return (f"wall ms per step, image {r['image'][0]}x{r['image'][1]}\n\n"
            + _table(headers + (["cuda x vs cpu"] if len(devices) == 2 else []), rows))


def _md_estimators(r: dict) -> str:
    rows = [[x["estimator"], x["device"], x.get("ms_per_iteration"), *(x.get("seconds") or [None, None]),
             x.get("stopped", "")] for x in r["rows"]]
    return f"{r['image']}\n\n" + _table(
        ["estimator", "device", "ms/iteration", "s (short run)", "s (longer run)", "note"], rows)


def _md_zssr(r: dict) -> str:
    rows = [[x["variant"], x.get("ms_per_iteration"), x.get("speedup_vs_fp32"), x.get("psnr_vs_fp32"),
             x.get("psnr_y"), x.get("stopped", "")] for x in r["rows"]]
    return f"on {r['device']}, {r['iters'][1]} iterations\n\n" + _table(
        ["variant", "ms/iteration", "x vs fp32", "PSNR vs fp32 (dB)", "PSNR Y vs truth (dB)", "note"], rows)


def _md_comparison(r: dict) -> str:
    def phases(x: dict) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in x.get("phases", {}).items() if k != "total")
    rows = [[x["job"], x.get("seconds"), phases(x), x.get("peak_gpu_mib"), x.get("psnr_y"),
             x.get("stopped") or x.get("estimate_failed", "")] for x in r["rows"]]
    return f"{r['image']}, preset {r['preset']} on {r['device']}\n\n" + _table(
        ["job", "seconds", "phases (s)", "peak GPU MiB", "PSNR Y (dB)", "note"], rows)


def _md_packing(r: dict) -> str:
    util = f"{r['sampler']}_util_mean_pct"
    rows = [[x["jobs_per_gpu"], x.get("finished_images"), x.get("window_s"), x.get("images_per_hour"),
             x.get("throughput_vs_one"), x.get(util), x.get("gpu_memory_peak_mib"), x.get("stopped", "")]
            for x in r["rows"]]
    return (f"{r['method']} ({r['preset']}, {' '.join(r['overrides'])}) on {r['image_side']} px LR images\n\n"
            + _table(["jobs per GPU" if r["sampler"] == "gpu" else "workers (1 CPU each)", "images", "window s", "images/hour", "x vs 1 job", f"{r['sampler']} util %",
                      "GPU MiB peak (all processes)", "note"], rows))


FORMATTERS = {"cuda_tests": _md_tests, "kernelgan_step": _md_steps, "estimators": _md_estimators,
              "zssr_precision": _md_zssr, "comparison": _md_comparison, "packing": _md_packing}


def write(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.json").write_text(json.dumps(_finite(report), indent=1, default=str))
    (out / "device_check.md").write_text(markdown(report))


# --------------------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT), help=f"output folder (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help=f"time for the whole check (default {GPU_SIZES.budget_s:.0f} with a GPU, "
                             f"{CPU_SIZES.budget_s:.0f} without)")
    parser.add_argument("--cpu", action="store_true", help="the reduced CPU version even where a GPU is present")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process (default 1)")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available() and not args.cpu
    sizes = GPU_SIZES if gpu else CPU_SIZES
    budget_s = sizes.budget_s if args.budget is None else args.budget
    set_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if gpu else [])
    main_device = devices[-1]
    started = time.monotonic()
    budget = Budget(max(0.0, budget_s - RESERVE_S), dict(sizes.weights))
    out = Path(args.out)
    report: dict[str, Any] = {"command": shlex.join(["python", *sys.argv]), "budget_s": budget_s, "parts": {}}

    hr = load_image(CLASSIC / f"{IMAGE}.png")
    hr = centre_crop(hr, sizes.hr_crop) if sizes.hr_crop else hr
    lr, kernel = degradations(hr, IMAGE)["div2krk"]
    parts: list[tuple[str, Callable[[float, list[str]], Any]]] = [
        ("cuda_tests", lambda d, notes: cuda_tests(gpu, d, notes)),
        ("kernelgan_step", lambda d, notes: kernelgan_step(sizes, devices, d, notes)),
        ("estimators", lambda d, notes: estimators(sizes, devices, lr, d, notes)),
        ("zssr_precision", lambda d, notes: zssr_precision(sizes, main_device, lr, hr, kernel, d, notes)),
        ("comparison", lambda d, notes: comparison(sizes, main_device, lr, hr, kernel, d, notes)),
        ("packing", lambda d, notes: packing(sizes, gpu, d, notes)),
    ]
    report["parts"]["environment"] = env = {"notes": []}
    with guarded(env, env["notes"], "environment"):  # a broken CUDA set-up still leaves the CPU parts
        env["result"] = environment(gpu, args.threads)
        print("\n".join(f"{k}: {v}" for k, v in env["result"].items()), flush=True)
    failed = _has_error(env)
    for name, run in parts:
        deadline = budget.deadline(name)
        notes: list[str] = []
        part: dict[str, Any] = {"budget_s": max(0.0, left(deadline)), "notes": notes}
        report["parts"][name] = part
        print(f"\n== {name} ({part['budget_s']:.0f} s)", flush=True)
        start = time.monotonic()
        if part["budget_s"] < 1.0:
            notes.append("skipped: no time left in the budget")
        else:
            with guarded(part, notes, name):
                part["result"] = run(deadline, notes)
        failed = failed or _has_error(part)
        part["seconds"] = time.monotonic() - start
        if "result" in part:
            print(FORMATTERS[name](part["result"]))
        print("\n".join(f"- {note}" for note in notes), flush=True)
        report["elapsed_s"] = time.monotonic() - started
        write(out, report)
    print(f"\nwrote {out / 'device_check.json'} and {out / 'device_check.md'} "
          f"({report['elapsed_s']:.0f} s of a {budget_s:.0f}-s budget)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
