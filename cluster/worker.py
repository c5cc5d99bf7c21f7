"""The Ray actor: one job slot that holds its device and runs one job at a time.

The actor is long-lived (its CUDA context stays warm across jobs) and limits torch/OpenMP to its
CPU share, since oversubscribed cores slow training many-fold. It loads the sweep's plugins as it
starts, and says why it cannot before it takes any job. A job's own exception comes back as a
:class:`JobFailure` with the traceback; only a dead worker surfaces as a Ray error.
"""
from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Optional, Union

import ray
import torch

from zssrgan.device import set_threads
from zssrgan.estimators import EstimateFailed
from zssrgan.evaluate import diagnostic_metrics, evaluate_estimate, evaluate_method
from zssrgan.results import Evaluation, KernelEstimate

from .jobs import check_files
from .plugins import load_problems


@dataclass
class JobFailure:
    error: str  # one readable line
    traceback: str
    metrics: dict[str, float] = field(default_factory=dict)  # what is known of a failed estimate


def run_job(job, estimate: Optional[KernelEstimate] = None) -> Evaluation:
    check_files(job)
    if job.kind == "estimate":
        return evaluate_estimate(job.item, job.scale, job.cfg, discriminator=job.discriminator)
    return evaluate_method(job.item, job.method, job.scale, job.cfg, estimate)


def failure(exc: Exception) -> JobFailure:
    """A job's exception as a failure record; a failed estimate keeps its diagnostics."""
    known = diagnostic_metrics(exc.diagnostics) if isinstance(exc, EstimateFailed) else {}
    return JobFailure(f"{type(exc).__name__}: {exc}", traceback.format_exc(), known)


def placement() -> tuple[str, str]:
    """(host, device note) of this worker: the Ray node and the GPUs Ray assigned to it."""
    host = f"{socket.gethostname()} (ray node {ray.get_runtime_context().get_node_id()[:12]})"
    gpus = ray.get_gpu_ids()
    if not gpus:
        return host, ""
    cuda = "" if torch.cuda.is_available() else ", no CUDA device visible: ran on CPU"
    return host, f" (ray GPU {','.join(map(str, gpus))}{cuda})"


@ray.remote(max_restarts=0)
class Worker:
    def __init__(self, cpus: float, plugins: Optional[dict[str, list[str]]] = None) -> None:
        set_threads(int(cpus))
        if not ray.get_gpu_ids():  # no GPU share (--gpus-per-job 0): stay off the node's GPUs
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        self.host, self.gpu_note = placement()
        self.problems = load_problems(plugins) if plugins else []

    def ready(self) -> tuple[str, list[str]]:
        """(host, why the sweep's plugins do not load here: empty when they do)."""
        return self.host, self.problems

    def run(self, job, estimate: Optional[KernelEstimate], submitted_at: float
            ) -> tuple[Union[Evaluation, JobFailure], Optional[KernelEstimate]]:
        """(evaluation or failure, kernel estimate to share); the estimate is a second return
        value so that it stays in the object store on its way to the jobs that reuse it."""
        waited = max(0.0, time.time() - submitted_at)
        try:
            evaluation = run_job(job, estimate)
        except Exception as exc:
            return failure(exc), None
        evaluation.timings["queue_wait"] = waited
        evaluation.host, evaluation.device = self.host, evaluation.device + self.gpu_note
        shared, evaluation.estimate = evaluation.estimate, None
        return evaluation, shared
