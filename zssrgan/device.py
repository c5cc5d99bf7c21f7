"""Device choice, seeding and thread counts, shared by every training loop and the workers."""
from __future__ import annotations

import ctypes
import os
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from .errors import InputError, UserError

DEVICES = ("auto", "cpu", "cuda")


class DeviceUnavailable(UserError, RuntimeError):
    """CUDA was asked for on a machine where none is visible."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when a device is visible, else CPU; ``cuda`` without one is an error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise InputError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailable("device 'cuda' was asked for but no CUDA device is visible; use --device auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; returns a NumPy generator for the caller's own sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def set_threads(n: int) -> None:
    """Limit torch (and OpenMP) to ``n`` threads: oversubscribed cores slow training many-fold."""
    n = max(1, int(n))
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


@contextmanager
def at_most_threads(n: int, device: torch.device) -> Iterator[None]:
    """Torch's intra-op threads capped at ``n`` (``n < 1``: no cap) while on a CPU ``device``: for
    loops of operations too small to split, where extra threads only add waiting (and, on a shared
    machine, wait for a descheduled thread)."""
    previous = torch.get_num_threads()
    if device.type != "cpu" or n < 1 or n >= previous:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def keep_freed_memory(threshold: int = 32 << 20) -> bool:
    """Ask glibc to reuse freed blocks of up to ``threshold`` bytes instead of returning them to the
    system: a training step frees and reallocates the same activation buffers, and a block mapped
    afresh faults its pages in again (4 KernelGAN runs in lock-step: about 3200 page faults and a
    fifth of the step's time). Process-wide; elsewhere than Linux/glibc nothing happens. Returns
    whether it applied."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, threshold)) and bool(libc.mallopt(m_trim_threshold, 2 * threshold))


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model with its core count: every timing names its hardware."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
