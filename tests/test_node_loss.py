"""A Ray node that dies under a sweep: the raylet of the local Ray that ``zssrgan run`` started is
killed while a job runs (what an out-of-memory kill does), in a separate process, as a user meets
it. The driver must say so and stop, keeping what finished, and the same command must resume.

The job that runs is the test-only plugin method ``fault_gate:gated`` (tests/fault_gate.py): it
waits until the test opens its gate, so the raylet dies while it certainly runs, whatever the
machine's speed. The sweep ships the plugin's module to its own Ray; the gate's folder reaches the
workers in the environment they inherit from the command."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fault_gate
from cluster.runs import load_runs
from fault_gate import Gate
from zssrgan.cli import EXIT_USER_ERROR
from zssrgan.datasets import make_dataset
from zssrgan.io import load_image, save_image

ROOT = Path(__file__).resolve().parent.parent
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


def _start(data: Path, cwd: Path, gate: Gate) -> subprocess.Popen:
    """``zssrgan run`` of a bicubic job, then a gated one, on one worker."""
    command = [sys.executable, "-m", "zssrgan.cli", "run", "--data", str(data), "--methods",
               f"bicubic,{fault_gate.NAME}", "--workers", "1", "--preset", "quick", "--experiment", "node",
               "--tracking-uri", "sqlite:///mlflow.db"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           fault_gate.GATE_ENV: str(gate.folder)}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


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
    (tmp_path / "gate").mkdir()
    gate = Gate(tmp_path / "gate")  # closed

    sweep = _start(data, tmp_path, gate)
    deadline = time.monotonic() + GENEROUS_S
    while not gate.started() and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gate.started(), _finish(sweep)[1][-3000:]
    raylets = [pid for pid, name in _descendants(sweep.pid).items() if name == "raylet"]
    assert len(raylets) == 1  # the Ray this sweep started
    os.kill(raylets[0], signal.SIGKILL)  # the fault, while the gated job runs
    code, err = _finish(sweep)  # within GENEROUS_S: not after the 600 s worker-start timeout
    assert code == EXIT_USER_ERROR, err[-3000:]
    assert "died" in err and "no node is left to run the sweep's jobs" in err
    assert "Kept: the jobs recorded FINISHED (1 in this run, 0 before); the 1 jobs in progress were marked " \
           "KILLED" in err
    assert "Run the same command to resume" in err and "Traceback" not in err
    runs = load_runs(uri, "node").set_index("tags.zssrgan.method")
    assert runs.loc["bicubic", "status"] == "FINISHED" and runs.loc[fault_gate.NAME, "status"] == "KILLED"

    gate.open()
    again = _start(data, tmp_path, gate)
    code, err = _finish(again)
    assert code == 0, err[-3000:]
    runs = load_runs(uri, "node")
    assert sorted(runs[runs.status == "FINISHED"]["tags.zssrgan.method"]) == ["bicubic", fault_gate.NAME]
    assert "1 jobs to run, 1 already finished" in err
