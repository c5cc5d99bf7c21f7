"""Device choice: ``auto`` takes a visible GPU, else the CPU; ``cuda`` without one is a clear error."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from zssrgan.device import at_most_threads, device_name, resolve_device
from zssrgan.io import save_image


def test_cpu_is_always_available_and_unknown_names_are_refused():
    assert resolve_device("cpu") == torch.device("cpu")
    assert device_name(torch.device("cpu")).endswith(f" ({os.cpu_count()} cores)")  # timings name their CPU
    with pytest.raises(ValueError, match="unknown device 'tpu'; choose one of: auto, cpu, cuda"):
        resolve_device("tpu")


def test_where_no_gpu_is_visible_auto_runs_on_the_cpu_and_cuda_is_refused_in_words(tmp_path):
    """CUDA_VISIBLE_DEVICES empty hides every GPU, so this runs as on a machine without one."""
    save_image(tmp_path / "lr.png", np.random.default_rng(0).random((24, 24, 3)))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    auto = subprocess.run([sys.executable, "-c", "from zssrgan.device import resolve_device; "
                           "print(resolve_device('auto'))"], env=env, capture_output=True, text=True)
    assert auto.returncode == 0 and auto.stdout.strip() == "cpu", auto.stderr
    command = [sys.executable, "-m", "zssrgan.cli", "sr", str(tmp_path / "lr.png"), "--out", str(tmp_path / "sr.png"),
               "--method", "zssr", "--preset", "quick", "--device", "cuda", "--set", "zssr.iters=1"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True)
    assert refused.returncode == 2
    assert "device 'cuda' was asked for but no CUDA device is visible; use --device auto or cpu" in refused.stderr
    assert not (tmp_path / "sr.png").exists()


@pytest.mark.cuda
def test_auto_takes_the_gpu_and_names_it():
    device = resolve_device("auto")
    assert device.type == "cuda" and resolve_device("cuda").type == "cuda"
    assert device_name(device) == torch.cuda.get_device_name(device)


def test_at_most_threads_caps_on_the_cpu_and_restores():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with at_most_threads(1, torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with at_most_threads(0, torch.device("cpu")):  # 0: no cap
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
