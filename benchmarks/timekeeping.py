"""Time-keeping for benchmarks that must end in a fixed time on a lent machine: a budget shared
among parts, training loops stopped at a deadline, marginal per-iteration times, and GPU (or CPU)
utilisation sampled in a thread."""
from __future__ import annotations

import _thread
import contextlib
import math
import os
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from zssrgan.progress import Callback


class Budget:
    """The run's end, shared among the parts still to run in proportion to their weights: a part
    that finishes early leaves its time to the later ones, one that overruns shrinks them."""

    def __init__(self, seconds: float, weights: dict[str, float]) -> None:
        self.end = time.monotonic() + seconds
        self.weights = dict(weights)

    def deadline(self, part: str) -> float:
        weight = self.weights.pop(part)
        share = weight / (weight + sum(self.weights.values()))
        return time.monotonic() + max(0.0, self.end - time.monotonic()) * share


class OutOfTime(Exception):
    """A deadline passed inside a training loop (raised from its callback)."""


@contextlib.contextmanager
def guarded(row: dict[str, Any], notes: list[str], what: str) -> Iterator[None]:
    """One item of a part: a stop at the deadline or an error (a CUDA error, an OOM) is recorded in
    its row and the part goes on, so one failure does not lose the other figures of a lent GPU."""
    start = time.perf_counter()
    try:
        yield
    except OutOfTime as stop:
        row["stopped"] = f"{stop} after {time.perf_counter() - start:.1f} s"
        notes.append(f"{what}: {row['stopped']}")
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc()
        notes.append(f"{what}: failed: {row['error']}")
        print(row["traceback"], file=sys.stderr)


def left(deadline: float) -> float:
    return deadline - time.monotonic()


def fair_share(deadline: float, items_left: int) -> float:
    """The deadline of the next of ``items_left`` items sharing what is left of ``deadline``."""
    return time.monotonic() + max(0.0, left(deadline)) / items_left


def stop_at(deadline: float) -> Callback:
    """A training callback that stops the loop once ``deadline`` has passed."""
    def callback(phase: str, step: int, values: Any) -> None:
        if time.monotonic() > deadline:
            raise OutOfTime(f"stopped at its deadline in {phase}, step {step}")
    return callback


@contextlib.contextmanager
def interrupt_at(deadline: float, fired: threading.Event) -> Iterator[None]:
    """Ctrl-C for the main thread at ``deadline``: the runner stops as it does for a user (running
    jobs KILLED). ``fired`` is set first, so a user's own Ctrl-C is not mistaken for it."""

    def fire() -> None:
        fired.set()
        _thread.interrupt_main()

    timer = threading.Timer(max(0.0, left(deadline)), fire)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_iteration(run: Callable[[int, Callback], tuple[float, int, Any]], iters: tuple[int, int],
                  deadline: float) -> dict[str, Any]:
    """ms per iteration as the marginal cost between runs of ``iters[0]`` and ``iters[1]``
    iterations, after an untimed warm-up run of ``iters[0]``. ``run(n, callback)`` returns (seconds,
    iterations done, result); the longer run's result comes back under ``result``. A run still going
    at ``deadline`` raises OutOfTime from ``callback``."""
    short, long = iters
    callback = stop_at(deadline)
    run(short, callback)
    s1, i1, _ = run(short, callback)
    s2, i2, result = run(long, callback)
    ms = (s2 - s1) / (i2 - i1) * 1e3 if i2 > i1 else None  # None: no iterations (or not set by iters)
    return {"ms_per_iteration": ms, "iterations": [i1, i2], "seconds": [s1, s2], "result": result}


def _gpu_index() -> int:
    """NVML's index of torch's cuda:0 (the first of CUDA_VISIBLE_DEVICES when it names indices)."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    return int(first) if first.isdigit() else 0


def _nvml_reader() -> Optional[Callable[[], tuple[float, float]]]:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(_gpu_index())
    except Exception:  # not installed, or no NVML library: nvidia-smi instead
        return None
    return lambda: (float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                    pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20)


def _smi_reader() -> Callable[[], tuple[float, float]]:
    command = ["nvidia-smi", "-i", str(_gpu_index()), "--query-gpu=utilization.gpu,memory.used",
               "--format=csv,noheader,nounits"]

    def read() -> tuple[float, float]:
        util, memory = subprocess.run(command, capture_output=True, text=True, timeout=5, check=True).stdout.split(",")
        return float(util), float(memory)
    return read


def _cpu_reader() -> Callable[[], tuple[float, float]]:
    """The whole machine's CPU use (%) since the last call, from /proc/stat (no memory figure)."""
    last = [0.0, 0.0]

    def read() -> tuple[float, float]:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [float(t) for t in stat.readline().split()[1:]]
        busy, total = sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait
        (last_busy, last_total), last[:] = last, [busy, total]
        return 100.0 * (busy - last_busy) / max(total - last_total, 1.0), math.nan
    return read


class Sampler(threading.Thread):
    """Samples (time, utilisation %, memory used MiB) every ``every`` s: the GPU's through NVML
    (pynvml) or nvidia-smi, or the CPU's where there is no GPU."""

    def __init__(self, gpu: bool, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.read = (_nvml_reader() or _smi_reader()) if gpu else _cpu_reader()
        self.source = "gpu" if gpu else "cpu"
        self.every, self.samples = every, []
        self.halt = threading.Event()
        self.error: Optional[str] = None

    def run(self) -> None:
        try:
            self.read()  # the CPU reader's first call only sets its baseline
            while not self.halt.wait(self.every):
                self.samples.append((time.time(), *self.read()))
        except Exception as exc:  # a sampler that fails says so in the results instead of dying silently
            self.error = f"{type(exc).__name__}: {exc}"

    def window(self, start: float, end: float) -> dict[str, Optional[float]]:
        """Mean utilisation and peak memory of the samples between ``start`` and ``end`` (epoch s)."""
        inside = [(u, m) for t, u, m in self.samples if start <= t <= end]
        memory = [m for _, m in inside if not math.isnan(m)]
        return {f"{self.source}_util_mean_pct": float(np.mean([u for u, _ in inside])) if inside else None,
                "gpu_memory_peak_mib": max(memory) if memory else None, "samples": len(inside)}
