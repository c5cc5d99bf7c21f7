"""A test-only method whose jobs wait at a gate until the test lets them through.

Fault-injection tests (a killed worker, Ctrl-C, a lost tracking server, a node added by an
autoscaler) must act while a job is certainly running, not race the speed of training: a job of
the method :data:`NAME` records that it started (pid, Ray node, GPUs) in the gate's folder, then
waits until the test opens the gate, or releases that one job, and returns bicubic interpolation.

It is a plugin like any user's ``module:function`` method (docs/plugins.md): the driver imports
this module from the tests folder, and the Ray workers get it, with the gate's folder in
:data:`GATE_ENV`, from the runtime environment of the test's ``ray.init`` (:func:`ray_runtime_env`).
"""
from __future__ import annotations

import io
import json
import os
import time
import uuid
from pathlib import Path
from typing import Optional

NAME = "fault_gate:gated"
GATE_ENV = "ZSSRGAN_TEST_GATE"
WAIT_S = 600.0  # a gated job gives up (fails) after this long: a broken test cannot hang the suite


def gated(lr, scale, cfg, kernels=None, estimate=None, callback=None):
    """test only: waits at the test's gate, then bicubic interpolation"""
    import ray

    from zssrgan.methods import bicubic

    folder = Path(os.environ[GATE_ENV])
    job = uuid.uuid4().hex
    started = {"job": job, "pid": os.getpid(), "seed": cfg.seed, "time": time.time(),
               "node": ray.get_runtime_context().get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()]}
    partial = folder / f".started-{job}"
    partial.write_text(json.dumps(started))
    partial.rename(folder / f"started-{job}.json")  # whole or absent for a reader
    deadline = time.monotonic() + WAIT_S
    while not ((folder / "open").exists() or (folder / f"release-{job}").exists()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never opened the gate in {folder}")
        time.sleep(0.05)
    return bicubic(lr, scale, cfg)


def ray_runtime_env(folder: Path) -> dict:
    """``ray.init(runtime_env=...)`` that ships this module to the workers and tells them the gate's
    folder (a sweep ships its plugins' modules itself only when it starts or joins Ray)."""
    return {"py_modules": [__file__], "env_vars": {GATE_ENV: str(folder)}}


class Gate:
    """The test's side: close, watch the jobs that started, release one or all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def close(self) -> None:
        """Closed, and nothing recorded: jobs that start from now on wait."""
        for path in self.folder.iterdir():
            path.unlink()

    def open(self) -> None:
        (self.folder / "open").touch()

    def release(self, job: str) -> None:
        (self.folder / f"release-{job}").touch()

    def started(self) -> list[dict]:
        """The jobs that reached the gate, in order of arrival."""
        records = [json.loads(p.read_text()) for p in self.folder.glob("started-*.json")]
        return sorted(records, key=lambda record: record["time"])

    def wait_started(self, count: int, timeout_s: float = 300.0, stream: Optional[io.StringIO] = None) -> list[dict]:
        """The first ``count`` jobs to reach the gate, once they have (a generous deadline: only a
        broken sweep misses it; the failure shows what the sweep printed to ``stream``)."""
        deadline = time.monotonic() + timeout_s
        while len(started := self.started()) < count:
            if time.monotonic() > deadline:
                seen = f"; the sweep printed: {stream.getvalue()!r}" if stream is not None else ""
                raise AssertionError(f"{len(started)} of {count} gated jobs started in {timeout_s:.0f} s{seen}")
            time.sleep(0.1)
        return started[:count]
