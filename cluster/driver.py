"""The sweep driver: expand a sweep, feed Ray actors, record every job in MLflow.

One actor per job slot, one job per actor at a time, so the number of jobs in flight is bounded by
the number of actors (backpressure: the queue stays in the driver, as paths). A kernel estimate
job hands its estimate to the jobs that reuse it through Ray's object store (the driver never
fetches it); the reference is dropped once the last of them is done.

Resuming: jobs whose key has a FINISHED run are skipped, and a retried job reuses its run, so a key
never gets a second FINISHED run (unless ``rerun`` asks for the jobs finished by other code, another
git commit or zssrgan version, to run again; reports keep a key's latest run). When an estimate's
run is FINISHED but some of its dependants are not, the estimate is computed again once, untracked
(no second run; deterministic under its seed on CPU), because the discriminator the ZSSRGAN modes
reuse is not stored in MLflow.

Failures stay local: a method's exception ends its run FAILED with the reason; the dependants of a
failed estimate fail with that reason; a job whose worker died is retried on a fresh actor up to
``max_retries`` times. Ctrl-C stops dispatching, marks the running jobs KILLED and returns
``status == "KILLED"``; the next run of the same sweep does the rest. A tracking store that stops
answering mid-sweep stops it with :class:`~cluster.store.TrackingLost`, saying what was kept:
the runs recorded before stay as they are, the jobs in flight are left RUNNING unrecorded, and the
next run of the same sweep marks those KILLED and runs them again. A Ray node that dies under a
sweep on a Ray it started itself (one machine: nothing else can take the jobs) stops it within
seconds with :class:`NodeLost`: the running jobs are marked KILLED, the next run does them.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

import ray
from ray.autoscaler.sdk import request_resources
from ray.exceptions import ObjectLostError, RayActorError, RayTaskError, WorkerCrashedError

from zssrgan.config import flatten
from zssrgan.errors import UserError

from .jobs import Job, Sweep, SweepSpec, base_config, expand, sweep_yaml
from .plugins import shipped_modules, sweep_plugins, unusable
from .records import grid_tag
from .store import TrackingLost, bounded_mlflow_retries, check_reachable, ui_hint
from .tracking import Tracker
from .worker import JobFailure, Worker

SUMMARY_METRICS = ("psnr_y", "ssim_y", "kernel_error", "time_total")
WORKER_START_TIMEOUT_S = 600.0  # a cluster may need to scale up before an actor can be placed
NODE_CHECK_S = 2.0  # how often the loop asks Ray which nodes are alive (Ray marks a dead one in ~15 s)
FAILED_LISTED = 5  # jobs named per cause of failure in the summary


class SweepError(UserError, RuntimeError):
    """The sweep cannot run at all (no worker fits the cluster, none could be started)."""


class NodeLost(SweepError):
    """A Ray node died and no node left can run a job (a Ray started by the sweep cannot grow)."""


# --------------------------------------------------------------------------------------------
# Ray


def connect(address: Optional[str], py_modules: Optional[list[str]] = None) -> bool:
    """Join ``address`` (``auto``, ``ray://...``) or start a local Ray with this machine's CPUs and
    GPUs, shipping ``py_modules`` to its workers; an already joined Ray is reused (nothing is
    shipped then). True when this call started or joined it."""
    if ray.is_initialized():
        return False
    ray.init(address=address or "local", logging_level=logging.WARNING, include_dashboard=False,
             log_to_driver=False, runtime_env={"py_modules": py_modules} if py_modules else None)
    return True


def _slots(resources: dict, per_cpu: float, per_gpu: float) -> int:
    """How many actors of ``per_cpu`` CPUs and ``per_gpu`` GPUs fit in ``resources``."""
    count = int(resources.get("CPU", 0.0) // per_cpu + 1e-9)
    return min(count, int(resources.get("GPU", 0.0) // per_gpu + 1e-9)) if per_gpu > 0 else count


def alive_nodes() -> dict[str, dict]:
    """Node id -> ``ray.nodes()`` entry, of the nodes Ray counts alive."""
    return {node["NodeID"]: node for node in ray.nodes() if node.get("Alive")}


def worker_shape(spec: SweepSpec, n_jobs: int, can_grow: bool = True) -> tuple[int, float, float, int]:
    """(number of actors, CPUs each, GPUs each, how many of them fit the cluster now).

    On a cluster that ``can_grow`` (one this command joined rather than started), ``workers`` is
    honoured beyond what fits now: the other actors wait until the cluster has room, which an
    autoscaling cluster makes for them (see :func:`ask_autoscaler`)."""
    # an actor lives on one node: what fits is counted node by node, not from the cluster's totals
    nodes = [node["Resources"] for node in alive_nodes().values()]
    cpus, gpus = (sum(node.get(name, 0.0) for node in nodes) for name in ("CPU", "GPU"))
    per_cpu = float(spec.cpus_per_job)
    per_gpu = (1.0 if gpus > 0 else 0.0) if spec.gpus_per_job is None else float(spec.gpus_per_job)
    if per_cpu <= 0 or per_gpu < 0:
        raise SweepError("--cpus-per-job must be > 0 and --gpus-per-job >= 0")
    fits = sum(_slots(node, per_cpu, per_gpu) for node in nodes)
    if spec.workers and can_grow:
        return min(spec.workers, n_jobs), per_cpu, per_gpu, fits
    if fits < 1:
        hint = " (on an autoscaling cluster, --workers N waits for the nodes it adds)" if can_grow else ""
        largest = max(nodes, key=lambda node: (node.get("GPU", 0.0), node.get("CPU", 0.0)), default={})
        raise SweepError(f"no job fits the cluster: its largest node has {largest.get('CPU', 0.0):g} CPUs and "
                         f"{largest.get('GPU', 0.0):g} GPUs ({cpus:g} and {gpus:g} in all), a job asks for "
                         f"{per_cpu:g} CPUs and {per_gpu:g} GPUs{hint}")
    return min(fits, spec.workers or fits, n_jobs), per_cpu, per_gpu, fits


def ask_autoscaler(workers: int, cpus: float, gpus: float, stream: TextIO) -> None:
    """Ask an autoscaling cluster for room for ``workers`` actors at once (``workers=0`` withdraws
    the request). Ray's autoscaler does not otherwise count actors waiting for a node as a reason to
    add nodes beyond its upscaling speed. The request is one per cluster, so a sweep makes it only
    when it needs more than fits. A hint only: where it cannot be made (Ray Client, ``ray://``,
    has no direct line to the cluster's control store), the waiting actors still start whenever
    nodes join, so a failure is reported and the sweep goes on."""
    bundle = {"CPU": cpus, **({"GPU": gpus} if gpus > 0 else {})}
    try:
        request_resources(bundles=[dict(bundle) for _ in range(workers)])
    except Exception as exc:
        stream.write(f"[zssrgan] could not {'ask the autoscaler for' if workers else 'withdraw the request for'} "
                     f"nodes: {type(exc).__name__}: {exc}\n")


# --------------------------------------------------------------------------------------------
# progress and summary


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """One line on stderr: done/running/failed, throughput, ETA; rewritten in place on a terminal."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.stream, self.enabled = total, stream, enabled
        self.tty = enabled and stream.isatty()
        self.start = self.last = time.monotonic()

    def show(self, done: int, running: int, failed: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < (0.5 if self.tty else 10.0)):
            return
        self.last = now
        ended = done + failed
        rate = ended / max(now - self.start, 1e-9)
        eta = (self.total - ended) / rate if rate > 0 else math.inf
        line = (f"[zssrgan] {ended}/{self.total} jobs: {done} done, {running} running, {failed} failed"
                f" | {rate * 60:.1f} jobs/min | ETA {_duration(eta)}")
        self.stream.write(f"\r{line:<100}" if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


@dataclass
class _Group:
    done: int = 0
    failed: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, values: dict[str, float]) -> None:
        self.done += 1
        for name in SUMMARY_METRICS:
            if name in values and math.isfinite(values[name]):
                self.sums[name] = self.sums.get(name, 0.0) + values[name]
                self.counts[name] = self.counts.get(name, 0) + 1

    def row(self, method: str, estimator: str, scale: int, grid: str) -> dict[str, Any]:
        means = {name: self.sums[name] / self.counts[name] for name in self.sums}
        return {"method": method, "estimator": estimator, "scale": scale, "grid": grid, "done": self.done,
                "failed": self.failed, **means}


def format_summary(summary: dict[str, Any]) -> str:
    """The per-method table of a finished sweep, its failed jobs by cause, and where to look at the runs."""
    header = ["method", "estimator", "scale", "grid", "done", "failed", *SUMMARY_METRICS]
    rows = [[str(r.get(h, "")) if not isinstance(r.get(h), float) else f"{r[h]:.4g}" for h in header]
            for r in summary["table"]]
    other = summary.get("other_code", 0)
    skipped = f"skipped; {other} of them by other code, --rerun runs them again" if other else "skipped"
    lines = [f"sweep {summary['sweep_id']}: {summary['finished']} finished, {summary['failed']} failed, "
             f"{summary['killed']} killed, {summary['already_finished']} already finished "
             f"({skipped}), {summary['retries']} retries, {summary['seconds']:.1f} s"]
    if rows:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "   (jobs of this run, means)")
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    if summary.get("failures"):
        lines.append("failed jobs, by cause:")
        for group in summary["failures"]:
            jobs, more = group["jobs"][:FAILED_LISTED], len(group["jobs"]) - FAILED_LISTED
            lines.append(f"  {group['cause']}")
            lines.append("    " + "; ".join(jobs) + (f"; and {more} more" if more > 0 else ""))
    lines.append(f"runs: {summary['look']}")
    return "\n".join(lines)


def _job_label(job: Job) -> str:
    """``method[estimator] on image x2 seed 0``, and the grid point when there is one."""
    estimator, grid = f"[{job.estimator}]" if job.estimator else "", grid_tag(job.grid)
    return f"{job.method}{estimator} on {job.item.name} x{job.scale} seed {job.seed}" + (f" ({grid})" if grid else "")


def _first_line(error: str, limit: int = 300) -> str:
    line = (error.strip().splitlines() or ["unknown error"])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def format_jobs(sweep: Sweep) -> str:
    """The dry-run table: one line per job, in dispatch order."""
    lines = [f"{'key':<12}  {'method':<16}  {'estimator':<12}  {'image':<20}  {'scale':>5}  {'seed':>4}  "
             f"{'uses':<12}  grid"]
    for job in sweep.jobs:
        lines.append(f"{job.key[:12]:<12}  {job.method:<16}  {job.estimator or '-':<12}  {job.item.name[:20]:<20}  "
                     f"{job.scale:>5}  {job.seed:>4}  {(job.estimate_key or '-')[:12]:<12}  {grid_tag(job.grid)}")
    lines.append(f"{len(sweep.jobs)} jobs, sweep {sweep.sweep_id}")
    lines += [f"skipped: {reason}" for reason in sweep.skipped]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the scheduling loop


@dataclass
class _Estimate:
    """One kernel estimate and the jobs that reuse it."""

    job: Job
    waiting: list[Job] = field(default_factory=list)  # dependants not dispatched yet
    remaining: int = 0  # dependants not ended yet; the reference is dropped at 0
    ref: Any = None
    computing: bool = False  # queued or running as an untracked recomputation


@dataclass
class _Task:
    job: Job
    actor: Any
    estimate_ref: Any
    run_id: Optional[str]  # None: an untracked estimate recomputation


class _Scheduler:
    def __init__(self, sweep: Sweep, spec: SweepSpec, tracker: Tracker, finished: set[str],
                 stream: TextIO) -> None:
        self.spec, self.tracker, self.stream = spec, tracker, stream
        self.plugins = sweep_plugins(spec.methods, sweep)  # every worker loads them before its first job
        self.unshipped: Optional[list[str]] = None  # modules to ship that Ray, already running, did not take
        self.queue: deque[tuple[Job, bool]] = deque()  # (job, tracked)
        self.estimates = {j.key: _Estimate(j) for j in sweep.jobs if j.kind == "estimate"}
        todo = [j for j in sweep.jobs if j.key not in finished]
        for job in todo:
            if job.estimate_key is None:
                self.queue.append((job, True))
            else:
                slot = self.estimates[job.estimate_key]
                slot.waiting.append(job)
                slot.remaining += 1
        for key, slot in self.estimates.items():
            if key in finished and slot.waiting:
                self._compute_estimate(slot)
        self.total = len(todo)
        self.already_finished = len(sweep.jobs) - len(todo)
        self.open_runs: dict[str, str] = {}  # job key -> its run, until the job ends
        self.attempts: dict[str, int] = {}
        self.tasks: dict[Any, _Task] = {}
        self.idle: list[Any] = []
        self.starting: dict[Any, tuple[Any, float]] = {}  # ready() ref -> (actor, since)
        self.groups: dict[tuple[str, str, int, str], _Group] = {}
        self.counts = {"finished": 0, "failed": 0, "killed": 0, "retries": 0}
        self.failures: dict[str, list[str]] = {}  # first line of the cause -> the jobs it failed
        self.actor_number = 0
        self.sweep_id = sweep.sweep_id
        self.interrupted = False
        self.asked_for_nodes = False

    # -- actors ------------------------------------------------------------------------------

    def _start_actor(self) -> None:
        self.actor_number += 1
        name = f"zssrgan-worker-{self.sweep_id}-{self.actor_number}-{uuid.uuid4().hex[:6]}"  # for `ray list actors`
        actor = Worker.options(num_cpus=self.cpus, num_gpus=self.gpus, name=name).remote(self.cpus, self.plugins)
        self.starting[actor.ready.remote()] = (actor, time.monotonic())

    # -- events ------------------------------------------------------------------------------

    def _compute_estimate(self, slot: _Estimate) -> None:
        if not slot.computing:
            slot.computing = True
            self.queue.appendleft((slot.job, False))

    def _dispatch(self) -> None:
        while self.idle and self.queue:
            job, tracked = self.queue.popleft()
            if job.estimate_key is not None and self.estimates[job.estimate_key].ref is None:
                self.estimates[job.estimate_key].waiting.append(job)  # the estimate was lost meanwhile
                continue
            run_id = self._run_id(job) if tracked else None
            estimate = self.estimates[job.estimate_key].ref if job.estimate_key else None
            actor = self.idle.pop()
            evaluation_ref, estimate_ref = actor.run.options(num_returns=2).remote(job, estimate, time.time())
            self.tasks[evaluation_ref] = _Task(job, actor, estimate_ref, run_id)

    def _run_id(self, job: Job) -> str:
        """The job's run: started once, reused by its retries."""
        if job.key not in self.open_runs:
            self.open_runs[job.key] = self.tracker.start_job(job)
        return self.open_runs[job.key]

    def _ended(self, job: Job, values: Optional[dict[str, float]]) -> None:
        """Count a tracked job that ended (values None: failed) and release its estimate."""
        del self.open_runs[job.key]
        group = self.groups.setdefault((job.method, job.estimator, job.scale, grid_tag(job.grid)), _Group())
        if values is None:
            group.failed += 1
            self.counts["failed"] += 1
        else:
            group.add(values)
            self.counts["finished"] += 1
        if job.estimate_key is not None:
            slot = self.estimates[job.estimate_key]
            slot.remaining -= 1
            if slot.remaining == 0:
                slot.ref = None

    def _fail(self, task: _Task, error: str, traceback: str, metrics: Optional[dict[str, float]] = None) -> None:
        job = task.job
        if task.run_id is not None:
            self.failures.setdefault(_first_line(error), []).append(_job_label(job))
            try:
                self.tracker.fail_job(task.run_id, job, error, traceback, metrics)
            except TrackingLost:
                raise
            except Exception as exc:  # the store is there but refused this record: the sweep goes on
                self.stream.write(f"[zssrgan] could not record that {job.method} on {job.item.name} failed "
                                  f"({error}): {type(exc).__name__}: {exc}\n")
            self._ended(job, None)
        if job.kind == "estimate":
            self._estimate_failed(self.estimates[job.key], error)

    def _estimate_failed(self, slot: _Estimate, error: str) -> None:
        reason = f"the {slot.job.estimator} kernel estimate this method reuses failed: {error}"
        for dependant in slot.waiting:
            self.failures.setdefault(_first_line(error), []).append(f"{_job_label(dependant)} (its estimate failed)")
            self.tracker.fail_job(self._run_id(dependant), dependant, reason, reason)
            self._ended(dependant, None)
        slot.waiting.clear()
        slot.computing = False

    def _succeed(self, task: _Task, evaluation) -> None:
        job = task.job
        if task.run_id is not None:
            try:
                self.tracker.finish_job(task.run_id, job, evaluation)
            except TrackingLost:
                raise
            except Exception as exc:  # the run is marked FAILED by the tracker; the sweep goes on
                self._fail(task, f"recording the run failed: {type(exc).__name__}: {exc}", "")
                return
            self._ended(job, {**evaluation.metrics, "time_total": evaluation.timings.get("total", math.nan)})
        if job.kind == "estimate":
            slot = self.estimates[job.key]
            slot.computing = False
            if slot.waiting:
                slot.ref = task.estimate_ref
                self.queue.extendleft(reversed([(j, True) for j in slot.waiting]))
                slot.waiting.clear()

    def _retry(self, task: _Task, exc: Exception) -> None:
        """Queue the job again (its run is reused), or fail it after ``max_retries`` retries."""
        job = task.job
        attempts = self.attempts[job.key] = self.attempts.get(job.key, 0) + 1
        if attempts > self.spec.max_retries:
            self._fail(task, f"the job was lost {attempts} times (last: {type(exc).__name__}: a worker or "
                             f"node died)", str(exc))
            return
        self.counts["retries"] += 1
        if job.estimate_key is not None and isinstance(exc, ObjectLostError):
            slot = self.estimates[job.estimate_key]  # the estimate it reuses went with its node
            slot.ref = None
            slot.waiting.append(job)
            self._compute_estimate(slot)
        else:
            self.queue.appendleft((job, task.run_id is not None))

    def _collect(self, ref) -> None:
        task = self.tasks.pop(ref)
        try:
            result = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:  # the worker died: replace it
            self._start_actor()
            self._retry(task, exc)
            return
        except ObjectLostError as exc:  # the worker lives, an object it needed or made was lost
            self.idle.append(task.actor)
            self._retry(task, exc)
            return
        except RayTaskError as exc:
            self.idle.append(task.actor)
            self._fail(task, f"{type(exc.cause).__name__}: {exc.cause}", str(exc))
            return
        self.idle.append(task.actor)
        if isinstance(result, JobFailure):
            self._fail(task, result.error, result.traceback, result.metrics)
        else:
            self._succeed(task, result)

    def _actor_ready(self, ref) -> None:
        actor, _ = self.starting.pop(ref)
        try:
            host, problems = ray.get(ref)
        except RayActorError:
            return  # it died while starting; its job slot is lost, the others go on
        self.idle.append(actor)
        if problems:
            raise SweepError(unusable(host, problems, self.unshipped))

    def _check_nodes(self, force: bool = False) -> None:
        """At most every NODE_CHECK_S (``force``: now): say which nodes died; on a Ray that cannot grow, a death that
        leaves no node able to run a job ends the sweep (NodeLost) instead of waiting for workers
        that cannot start. Elsewhere the dead node's jobs are retried as their workers' deaths come in."""
        now = time.monotonic()
        if now - self.nodes_checked < NODE_CHECK_S and not force:
            return
        self.nodes_checked = now
        alive = alive_nodes()
        dead = [self.nodes.pop(node_id) for node_id in list(self.nodes) if node_id not in alive]
        self.nodes.update(alive)
        if not dead:
            return
        where = ", ".join(f"{node['NodeID'][:12]} at {node.get('NodeManagerAddress', '?')}" for node in dead)
        fits = sum(_slots(node["Resources"], self.cpus, self.gpus) for node in alive.values())
        what = (f"Ray node {where} died (its raylet stopped: killed, out of memory or its machine lost; the "
                "Ray logs there say which, /tmp/ray/session_latest/logs by default)")
        if not fits and not self.can_grow:
            raise NodeLost(f"{what}, and no node is left to run the sweep's jobs")
        then = ("its jobs are retried on the other nodes" if fits else
                f"no node left can run a job: waiting up to {WORKER_START_TIMEOUT_S:.0f} s for nodes to join")
        self.stream.write(f"\n[zssrgan] {what}; {then}\n")

    def _check_starting(self) -> None:
        if self.tasks or self.idle or not self.starting:
            return
        oldest = min(since for _, since in self.starting.values())
        if time.monotonic() - oldest > WORKER_START_TIMEOUT_S:
            raise SweepError(f"no worker started within {WORKER_START_TIMEOUT_S:.0f} s: the cluster lacks "
                             f"{self.cpus:g} CPUs and {self.gpus:g} GPUs for a job")

    # -- the loop ----------------------------------------------------------------------------

    def run(self, workers: int, cpus: float, gpus: float, progress: Progress, ask_for_nodes: bool = False,
            can_grow: bool = True) -> None:
        self.cpus, self.gpus, self.can_grow = cpus, gpus, can_grow
        self.nodes, self.nodes_checked = alive_nodes(), time.monotonic()
        for _ in range(workers):
            self._start_actor()
        self.asked_for_nodes = ask_for_nodes
        if ask_for_nodes:
            ask_autoscaler(workers, cpus, gpus, self.stream)
        try:
            while self.queue or self.tasks:
                if not self.idle and not self.tasks and not self.starting:
                    self._check_nodes(force=True)  # a dead node is the likely reason: say so
                    raise SweepError("every worker died while starting; see the Ray logs")
                self._dispatch()
                waiting = list(self.tasks) + list(self.starting)
                ready, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
                if ready:  # collect everything that is done, not one per turn
                    ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
                for ref in ready:
                    (self._collect if ref in self.tasks else self._actor_ready)(ref)
                self._check_nodes()
                self._check_starting()
                running = sum(t.run_id is not None for t in self.tasks.values())
                progress.show(self.counts["finished"], running, self.counts["failed"])
        except KeyboardInterrupt:
            self.stream.write("\n[zssrgan] interrupted: running jobs marked KILLED; run the same command to resume\n")
            self.interrupted = True
            self._kill_running()
        except TrackingLost:  # nothing can be marked now: every call would wait for the store again
            self.queue.clear()
            self.open_runs.clear()
            raise
        except BaseException:
            self._kill_running()
            raise
        finally:
            self._withdraw_node_request()
            for actor in self.idle + [t.actor for t in self.tasks.values()] + [a for a, _ in self.starting.values()]:
                ray.kill(actor)
            progress.show(self.counts["finished"], 0, self.counts["failed"], force=True)
            progress.close()

    def _withdraw_node_request(self) -> None:
        """Once: the request for nodes ends with the sweep (before any MLflow call on the way out,
        since a stopped Ray job is killed seconds after its SIGTERM)."""
        if self.asked_for_nodes:
            self.asked_for_nodes = False
            ask_autoscaler(0, 0.0, 0.0, self.stream)

    def _kill_running(self) -> None:
        """No run is left RUNNING when the driver stops early (unless the store is gone: the next
        run of the sweep marks them)."""
        self._withdraw_node_request()
        self.queue.clear()
        try:
            for run_id in self.open_runs.values():  # running, or waiting for a retry
                self.tracker.kill_job(run_id)
                self.counts["killed"] += 1
        except TrackingLost as exc:
            self.stream.write(f"[zssrgan] {exc}: the runs still RUNNING are marked KILLED when the sweep resumes\n")
        self.open_runs.clear()

    def summary(self) -> dict[str, Any]:
        return {
            **self.counts,
            "jobs": self.total + self.already_finished,
            "already_finished": self.already_finished,
            "table": [g.row(*key) for key, g in sorted(self.groups.items())],
            "failures": [{"cause": cause, "jobs": jobs} for cause, jobs in self.failures.items()],
        }


# --------------------------------------------------------------------------------------------
# entry point


def run_sweep(spec: SweepSpec, stream: Optional[TextIO] = None) -> dict[str, Any]:
    """Run (or resume) a sweep and return its summary (see :func:`_run_sweep`), with MLflow's
    HTTP retries bounded so that a lost tracking server stops it in seconds, not hours."""
    with bounded_mlflow_retries():
        return _run_sweep(spec, stream)


def _run_sweep(spec: SweepSpec, stream: Optional[TextIO]) -> dict[str, Any]:
    """Run (or resume) a sweep and return its summary.

    The summary holds ``status`` (FINISHED, or KILLED after Ctrl-C; failed jobs are counted),
    ``sweep_id``, ``parent_run_id``, the counts ``jobs``, ``finished``, ``failed``, ``killed``,
    ``already_finished`` and ``retries``, ``other_code`` (finished jobs made by other code, skipped
    unless ``spec.rerun``), ``seconds``, ``table`` (one row per method, scale and grid point: jobs
    done/failed and mean ``psnr_y``, ``ssim_y``, ``kernel_error``, ``time_total`` of this run),
    ``failures`` (``{"cause": first line of the error, "jobs": [...]}`` per cause) and ``look``
    (how to open the runs). Errors in the spec, the data or the tracking store raise before any
    training starts; a Ray node lost under a sweep that cannot move its jobs raises
    :class:`NodeLost` once the running jobs are marked KILLED.
    """
    start = time.monotonic()
    stream = stream or sys.stderr
    sweep = expand(spec)
    check_reachable(spec.tracking_uri)
    tracker = Tracker(spec.tracking_uri, spec.experiment)
    finished = tracker.finished_jobs()
    other_code = {job.key for job in sweep.jobs if finished.get(job.key) is False}
    done = set(finished) - other_code if spec.rerun else set(finished)
    params = {"data": ",".join(spec.data), "methods": ",".join(spec.methods), "scales": spec.scales,
              "seeds": spec.seeds, "preset": spec.preset, "overrides": ";".join(spec.overrides),
              "grid": ";".join(f"{k}={','.join(map(str, v))}" for k, v in sorted(spec.grid.items())),
              "real": spec.real, "jobs": len(sweep.jobs),
              **{f"cfg.{k}": v for k, v in flatten(base_config(spec)).items()}}
    parent_id = tracker.start_sweep(sweep.sweep_id, params, sweep_yaml(spec))
    scheduler = _Scheduler(sweep, spec, tracker, done, stream)
    for reason in sweep.skipped:
        stream.write(f"[zssrgan] skipped: {reason}\n")
    if other_code:
        stream.write(f"[zssrgan] {len(other_code)} of the finished jobs were made by other code (another git commit "
                     "or zssrgan version): " + ("running them again (--rerun)\n" if spec.rerun else
                                                 "skipped; add --rerun to run them again\n"))
    started_ray = False
    try:
        if scheduler.queue or scheduler.total:
            ship = shipped_modules(scheduler.plugins)
            started_ray = connect(spec.address, ship)
            scheduler.unshipped = None if started_ray else ship
            own_ray = started_ray and spec.address is None  # started here: it cannot grow
            workers, cpus, gpus, fits = worker_shape(spec, max(1, scheduler.total), can_grow=not own_ray)
            stream.write(f"[zssrgan] sweep {sweep.sweep_id}: {scheduler.total} jobs to run, "
                         f"{scheduler.already_finished} already finished; {workers} workers "
                         f"({cpus:g} CPU, {gpus:g} GPU each)\n")
            if workers > fits:
                stream.write(f"[zssrgan] {fits} of the {workers} workers fit the cluster now; the others "
                             "start when it has room (an autoscaling cluster adds nodes for them)\n")
            scheduler.run(workers, cpus, gpus, Progress(scheduler.total, stream, spec.progress),
                          ask_for_nodes=workers > fits, can_grow=not own_ray)
    except TrackingLost as exc:
        raise TrackingLost(
            f"lost the tracking store during sweep {sweep.sweep_id}: {exc}. The jobs recorded FINISHED are kept "
            f"({scheduler.counts['finished']} in this run, {scheduler.already_finished} before); the jobs in "
            "progress were not recorded. Run the same command once the store answers again: it runs the jobs "
            "not recorded FINISHED (failed ones included) and nothing else") from exc
    except BaseException as exc:  # the sweep could not run on: its parent run must not stay RUNNING
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        with contextlib.suppress(Exception):
            tracker.end_sweep(status, {**scheduler.summary(), "error": f"{type(exc).__name__}: {exc}"})
        if isinstance(exc, NodeLost):  # the running jobs were marked KILLED on the way out
            raise NodeLost(
                f"sweep {sweep.sweep_id} stopped: {exc}. Kept: the jobs recorded FINISHED "
                f"({scheduler.counts['finished']} in this run, {scheduler.already_finished} before); the "
                f"{scheduler.counts['killed']} jobs in progress were marked KILLED. Run the same command to resume: "
                "it runs the jobs not recorded FINISHED and nothing else") from None
        raise
    finally:
        if started_ray:
            ray.shutdown()
    summary = scheduler.summary()
    status = "KILLED" if scheduler.interrupted else "FINISHED"  # failed jobs are counted, not fatal
    summary.update(status=status, sweep_id=sweep.sweep_id, parent_run_id=parent_id,
                   other_code=len(other_code & done), seconds=time.monotonic() - start,
                   look=ui_hint(spec.tracking_uri, tracker.experiment_id))
    tracker.end_sweep(status, summary)
    return summary
