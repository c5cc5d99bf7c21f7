"""A Ray node that dies under a sweep: the raylet of the local Ray that ``zssrgan run`` started is
killed while a job runs (what an out-of-memory kill does), in a separate process, as a user meets
it. The driver must say so and stop, keeping what finished, and the same command must resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from cluster.runs import load_runs
from zssrgan.cli import EXIT_USER_ERROR
from zssrgan.datasets import make_dataset
from zssrgan.io import load_image, save_image

ROOT = Path(__file__).resolve().parent.parent
# a zssr job of a few seconds (no early stop: min_lr 0) behind a bicubic job, one worker
SETTINGS = ["kernelgan.input_crop=32", "kernelgan.shave=0", "zssr.iters=800", "zssr.crop=24", "zssr.channels=16",
            "zssr.min_lr=0"]
GENEROUS_S = 300  # a 2-core machine shared with other work: Ray and MLflow start slowly


def _descendants(pid: int) -> dict[int, str]:
    """pid -> name of every process below ``pid``, from /proc (Linux, where Ray runs its tests too)."""
    parent, name = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        child = int(stat.parent.name)
        name[child] = text[text.index("(") + 1:text.rindex(")")]
        parent[child] = int(text[text.rindex(")") + 2:].split()[1])
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, up in parent.items() if up in frontier}
        found.update({child: name[child] for child in frontier})
    return found


def _command(data: Path) -> list[str]:
    return [sys.executable, "-m", "zssrgan.cli", "run", "--data", str(data), "--methods", "bicubic,zssr",
            "--workers", "1", "--preset", "quick", "--experiment", "node", "--tracking-uri", "sqlite:///mlflow.db",
            *[a for s in SETTINGS for a in ("--set", s)]]


def _start(data: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(_command(data), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _zssr_status(uri: str) -> str | None:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("node")
    runs = experiment and client.search_runs([experiment.experiment_id], "tags.`zssrgan.method` = 'zssr'")
    return runs[0].info.status if runs else None


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=GENEROUS_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
        pytest.fail(f"the sweep did not end within {GENEROUS_S} s:\n{err[-3000:]}")
    return process.returncode, err


def test_a_dead_node_stops_the_sweep_in_words_and_the_same_command_resumes(tmp_path, sqlite_uri):
    hr = tmp_path / "hr"
    save_image(hr / "baby.png", load_image(ROOT / "benchmarks/data/classic/baby.png")[:80, :80])
    data = make_dataset(hr, tmp_path / "data", scales=(2,))
    uri = sqlite_uri  # the store the command's sqlite:///mlflow.db names, its tables made before this test reads it

    sweep = _start(data, tmp_path)
    deadline = time.monotonic() + GENEROUS_S
    while _zssr_status(uri) != "RUNNING" and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _zssr_status(uri) == "RUNNING", _finish(sweep)[1][-3000:]
    raylets = [pid for pid, name in _descendants(sweep.pid).items() if name == "raylet"]
    assert len(raylets) == 1  # the Ray this sweep started
    os.kill(raylets[0], signal.SIGKILL)  # the fault, while the zssr job runs
    killed_at = time.monotonic()
    code, err = _finish(sweep)
    noticed_s = time.monotonic() - killed_at
    assert code == EXIT_USER_ERROR, err[-3000:]
    assert "died" in err and "no node is left to run the sweep's jobs" in err
    assert "Kept: the jobs recorded FINISHED (1 in this run, 0 before); the 1 jobs in progress were marked " \
           "KILLED" in err
    assert "Run the same command to resume" in err and "Traceback" not in err
    assert noticed_s < 120, noticed_s  # not the 600 s worker-start timeout; Ray needs ~15 s to call a node dead
    runs = load_runs(uri, "node").set_index("tags.zssrgan.method")
    assert runs.loc["bicubic", "status"] == "FINISHED" and runs.loc["zssr", "status"] == "KILLED"

    again = _start(data, tmp_path)
    code, err = _finish(again)
    assert code == 0, err[-3000:]
    runs = load_runs(uri, "node")
    assert sorted(runs[runs.status == "FINISHED"]["tags.zssrgan.method"]) == ["bicubic", "zssr"]
    assert "1 jobs to run, 1 already finished" in err
