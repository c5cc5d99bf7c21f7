"""benchmarks/device_check.py: its CPU version runs every part end to end (so the GPU check cannot
rot unnoticed between the rare runs on a lent GPU), and what does not fit its budget is skipped or
stopped with a note instead of overrunning. No timing is asserted."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from zssrgan.estimators import ESTIMATORS
from zssrgan.methods import DISCRIMINATOR, KERNEL, METHODS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "device_check.py"
PARTS = ("cuda_tests", "kernelgan_step", "estimators", "zssr_precision", "comparison", "packing")


def run_check(out: Path, budget: str) -> dict:
    """The script's CPU version in a subprocess, as a user runs it; its JSON report."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--out", str(out), "--budget", budget],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "mode: CPU version" in done.stdout
    markdown = (out / "device_check.md").read_text()
    assert all(f"## {part.replace('_', ' ')}" in markdown for part in PARTS)
    return json.loads((out / "device_check.json").read_text())


@pytest.mark.timeout(1800)
def test_cpu_version_measures_every_part(tmp_path):
    # a budget no loaded machine reaches: every part runs to its end
    report = run_check(tmp_path, budget="3600")
    parts = report["parts"]
    assert report["parts"]["environment"]["result"]["mode"].startswith("CPU version")
    assert all("error" not in parts[name] and "result" in parts[name] for name in PARTS)
    assert parts["cuda_tests"]["result"]["returncode"] in (0, 5)  # passed or skipped, or none marked

    steps = parts["kernelgan_step"]["result"]["cpu"]
    assert {"production", "production, layer-by-layer G", "literal"} <= set(steps)
    assert all(steps[name]["wall_ms"] > 0 for name in ("production", "literal"))
    assert "cuda" not in parts["kernelgan_step"]["result"]

    estimators = parts["estimators"]["result"]["rows"]
    assert [row["estimator"] for row in estimators] == list(ESTIMATORS)
    for row in estimators:
        assert "stopped" not in row and "error" not in row, row
        assert row["device"] == "cpu" and len(row["seconds"]) == 2
    kernelgan = estimators[list(ESTIMATORS).index("kernelgan")]
    assert kernelgan["iterations"][1] > kernelgan["iterations"][0] and kernelgan["ms_per_iteration"] > 0

    zssr = parts["zssr_precision"]["result"]["rows"]
    assert [row["variant"] for row in zssr] == ["fp32", "bf16 autocast", "channels-last", "bf16 + channels-last",
                                                "fp32, second run"]
    for row in zssr:
        # on the CPU every variant runs fp32: the same output (inf dB, None in JSON) or nearly so
        assert row["psnr_vs_fp32"] is None or row["psnr_vs_fp32"] > 40, row
        assert math.isfinite(row["psnr_y"])

    comparison = parts["comparison"]["result"]["rows"]
    assert [row["job"] for row in comparison] == ["estimate (kernelgan)", *METHODS]
    for row in comparison:
        assert "stopped" not in row and "error" not in row, row
        assert row["seconds"] > 0 and row["peak_gpu_mib"] is None
    assert all(math.isfinite(row["psnr_y"]) for row in comparison[1:])
    assert "kernelgan_train" in comparison[0]["phases"]  # the seconds of each phase
    assert "zssr_x2_train" in comparison[2]["phases"]

    packing = parts["packing"]["result"]["rows"]
    assert [row["jobs_per_gpu"] for row in packing] == [1, 2]
    for row in packing:
        assert "failed_jobs" not in row, row
        assert row["finished_images"] == row["images"] == 2 * row["jobs_per_gpu"], row
        assert row["images_per_hour"] > 0 and row["cpu_util_mean_pct"] is not None
        assert len(row["job_seconds"]) == 2 and "kernelgan-zssr" in row["job_seconds"]  # estimate and ZSSR jobs


def test_parts_that_do_not_fit_the_budget_are_skipped_and_say_so(tmp_path):
    report = run_check(tmp_path, budget="0")
    for name in PARTS:
        assert "result" not in report["parts"][name]
        assert report["parts"][name]["notes"] == ["skipped: no time left in the budget"]


def test_a_loop_past_its_deadline_is_stopped_and_what_needs_it_is_skipped(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import torch

    import device_check

    sizes = device_check.CPU_SIZES
    hr = device_check.centre_crop(device_check.load_image(device_check.CLASSIC / "bird.png"), sizes.hr_crop)
    lr, kernel = device_check.degradations(hr, "bird")["div2krk"]
    notes: list[str] = []
    result = device_check.comparison(sizes, torch.device("cpu"), lr, hr, kernel, time.monotonic(), notes)
    rows = {row["job"]: row for row in result["rows"]}
    assert rows["estimate (kernelgan)"]["stopped"].startswith("stopped at its deadline in kernelgan")
    assert rows["zssr"]["stopped"].startswith("stopped at its deadline in zssr_x2")
    assert np.isfinite(rows["bicubic"]["psnr_y"])  # no training loop: nothing to stop
    for name, method in METHODS.items():
        if method.estimate in (KERNEL, DISCRIMINATOR):
            assert rows[name]["stopped"] == "skipped: no shared estimate (see its row)"
    stopped = [job for job, row in rows.items() if "stopped" in row]
    assert len(notes) == len(stopped) and all(job in note for job, note in zip(stopped, notes))
