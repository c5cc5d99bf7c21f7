"""MLflow tracking: one parent run per sweep, one child run per job (schema in ARCHITECTURE.md).

The sweep driver is the only MLflow writer: workers send plain results back and the driver logs
them here through :class:`mlflow.MlflowClient`, which never touches MLflow's global "active run"
state. Every child run ends FINISHED, FAILED (tag ``zssrgan.error``) or KILLED, never half-written.
:func:`load_runs` and :func:`metric_history` are the read side used by the report builder.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
)
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

from zssrgan.config import flatten

VERSIONED_PACKAGES = ("zssrgan", "torch", "numpy", "ray", "mlflow")
ERROR_TAG_LENGTH = 500  # zssrgan.error stays one short, readable line; the traceback is an artifact
_SWEEP_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
_PAGE = 1000
# MLflow's own HTTP retries take about 4 minutes per call to give up on a server that refuses
# connections (7 retries, backoff factor 2), and each attempt may wait 120 s for one that does not
# answer. During a sweep they are bounded (see bounded_mlflow_retries): a refusing server stops
# the sweep in about 35 s, a silent one in about 2.5 minutes (6 attempts of 20 s), and a server
# restart of up to ~30 s goes unnoticed. A value the user set in the environment wins.
HTTP_RETRY_DEFAULTS = {MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "5", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "1",
                       MLFLOW_HTTP_REQUEST_TIMEOUT.name: "20"}


class TrackingUnavailable(RuntimeError):
    """The tracking store cannot be reached or written."""


class TrackingLost(TrackingUnavailable):
    """The tracking store stopped answering during a sweep: nothing more can be recorded."""


# --------------------------------------------------------------------------------------------
# reachability


def _local_store_path(tracking_uri: str) -> Optional[Path]:
    """The sqlite database file or file-store folder of a local URI; None for remote stores."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):])
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # a plain path
        return Path(tracking_uri)
    return None


def _check_writable_folder(tracking_uri: str, folder: Path) -> None:
    # A real write test: os.access says yes to root even on read-only mounts.
    if not folder.is_dir():
        reason = "it is not a folder" if folder.exists() else "the folder does not exist (create it first)"
        raise TrackingUnavailable(f"cannot use the MLflow tracking store at {tracking_uri}: {folder}: {reason}")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise TrackingUnavailable(
            f"cannot use the MLflow tracking store at {tracking_uri}: folder {folder} is not writable ({exc.strerror})"
        ) from None


def _check_http(tracking_uri: str, timeout_s: float) -> None:
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # up, behind authentication that MLflow's client handles
            return
        raise TrackingUnavailable(
            f"cannot reach the MLflow tracking server at {tracking_uri}: {url} answered HTTP {exc.code} "
            "(is this the address of an MLflow server?)"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailable(f"cannot reach the MLflow tracking server at {tracking_uri}: {reason}") from None


def _check_tcp(tracking_uri: str, timeout_s: float) -> None:
    """Database URIs (postgresql://host:5432/db, ...): the port must accept a connection."""
    parsed = urlparse(tracking_uri)
    default_ports = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
    port = parsed.port or default_ports.get(parsed.scheme.split("+")[0])
    if not parsed.hostname or not port:
        return  # nothing cheap to check (e.g. databricks); MLflow's own errors will tell
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        raise TrackingUnavailable(
            f"cannot reach the MLflow tracking store at {tracking_uri}: {parsed.hostname}:{port}: {exc}"
        ) from None


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail within seconds, with a readable reason, when the tracking store cannot be used.

    MLflow's own HTTP client retries for minutes before giving up, which looks like a hang to a
    user who mistyped ``--tracking-uri``; this check uses one short request instead.
    """
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https"):
        _check_http(tracking_uri, timeout_s)
        return
    store = _local_store_path(tracking_uri)
    if store is None:
        _check_tcp(tracking_uri, timeout_s)
    elif tracking_uri.startswith("sqlite:"):
        _check_writable_folder(tracking_uri, store.resolve().parent)
    else:  # file store: the folder itself, or the folder it will be created in
        store = store.resolve()
        _check_writable_folder(tracking_uri, store if store.exists() else store.parent)


@contextlib.contextmanager
def bounded_mlflow_retries() -> Iterator[None]:
    """MLflow's HTTP retries bounded to :data:`HTTP_RETRY_DEFAULTS` for the block (where the user
    has not set them), then the environment as it was."""
    added = {name: value for name, value in HTTP_RETRY_DEFAULTS.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


# --------------------------------------------------------------------------------------------
# what every job run records


@lru_cache(maxsize=None)
def package_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


@lru_cache(maxsize=None)
def git_commit() -> str:
    """The commit of the checkout zssrgan runs from; "unknown" for an installed package.

    The checkout must be the package's own repository (its top level holds ``zssrgan/``), so a
    virtual environment that happens to live inside some other repository does not count.
    """
    import zssrgan

    root = Path(zssrgan.__file__).resolve().parent.parent
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if len(top) != 2 or Path(top[0]).resolve() != root:
        return "unknown"
    return top[1]


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _param_text(value: Any) -> str:
    return _truncate("none" if value is None else str(value), MAX_PARAM_VAL_LENGTH)


def grid_tag(grid: dict) -> str:
    """``key=value;...`` of an ablation point, sorted by key; empty when there is none."""
    return ";".join(f"{k}={grid[k]}" for k in sorted(grid or {}))


def job_tags(job, parent_id: str) -> dict[str, str]:
    return {
        "mlflow.parentRunId": parent_id,
        "zssrgan.job_key": job.key,
        "zssrgan.sweep_id": job.sweep_id,
        "zssrgan.method": job.method,
        "zssrgan.image": job.item.name,
        "zssrgan.scale": str(job.scale),
        "zssrgan.seed": str(job.seed),
        "zssrgan.grid": grid_tag(job.grid),
    }


def job_params(job) -> dict[str, str]:
    params = {
        "method": job.method,
        "scale": job.scale,
        "seed": job.seed,
        "image": job.item.name,
        "dataset": job.dataset,
        "lr_path": job.item.lr_path,
        "gt_path": job.item.gt_path,
        **{f"cfg.{k}": v for k, v in flatten(job.cfg).items()},
        **{f"version.{k}": v for k, v in package_versions().items()},
        "git_commit": git_commit(),
    }
    return {k: _param_text(v) for k, v in params.items()}


def job_metrics(evaluation) -> dict[str, float]:
    """Quality metrics, ``time_<phase>`` and ``its_per_sec`` (training iterations per second of
    the job's total time, counted from the last step of every phase of the history)."""
    out = {k: float(v) for k, v in evaluation.metrics.items() if v is not None}
    out.update({f"time_{phase}": float(s) for phase, s in evaluation.timings.items()})
    iterations = sum(rows[-1]["step"] + 1 for rows in evaluation.history.values() if rows)
    total = evaluation.timings.get("total", 0.0)
    if "its_per_sec" not in out and iterations and total > 0:
        out["its_per_sec"] = iterations / total
    return out


def curve_metrics(history: dict[str, list[dict[str, float]]], timestamp: int) -> list[Metric]:
    """Every reported value as metric ``<phase>.<value>`` at its step."""
    return [
        Metric(f"{phase}.{name}", float(value), timestamp, int(row["step"]))
        for phase, rows in history.items()
        for row in rows
        for name, value in row.items()
        if name != "step"
    ]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --------------------------------------------------------------------------------------------
# artifacts


def _save_kernel_picture(path: Path, kernel: np.ndarray, true_kernel: Optional[np.ndarray]) -> None:
    """The kernel the job used, beside the true one when it is known."""
    panels = [("kernel", kernel)] + ([("true kernel", true_kernel)] if true_kernel is not None else [])
    fig = Figure(figsize=(3.6 * len(panels), 3.0), dpi=100)
    FigureCanvasAgg(fig)
    for i, (title, k) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        fig.colorbar(ax.imshow(k, cmap="viridis", interpolation="nearest"), ax=ax)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)


def _save_curves_picture(history: dict[str, list[dict[str, float]]], path: Path) -> None:
    """One panel per phase, one line per reported value; log scale when every value is positive."""
    phases = [p for p, rows in history.items() if rows]
    fig = Figure(figsize=(5.0, 2.6 * len(phases)), dpi=100)
    FigureCanvasAgg(fig)
    for i, phase in enumerate(phases, start=1):
        ax = fig.add_subplot(len(phases), 1, i)
        rows = history[phase]
        names = sorted({k for row in rows for k in row} - {"step"})
        for name in names:
            points = [(row["step"], row[name]) for row in rows if name in row]
            ax.plot([s for s, _ in points], [v for _, v in points], label=name, linewidth=1)
        values = [row[n] for row in rows for n in names if n in row]
        if values and all(v > 0 and math.isfinite(v) for v in values):
            ax.set_yscale("log")
        ax.set_title(phase, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def write_artifacts(evaluation, folder: Path) -> None:
    """sr.png, kernel.npy/.mat/.png, true_kernel.npy and curves.png, for what the job produced."""
    from zssrgan.io import save_image, save_kernel

    if evaluation.sr is not None:
        save_image(folder / "sr.png", evaluation.sr)
    if evaluation.kernel is not None:
        save_kernel(folder / "kernel.npy", evaluation.kernel)
        save_kernel(folder / "kernel.mat", evaluation.kernel)
        _save_kernel_picture(folder / "kernel.png", evaluation.kernel, evaluation.true_kernel)
    if evaluation.true_kernel is not None:
        save_kernel(folder / "true_kernel.npy", evaluation.true_kernel)
    if any(evaluation.history.values()):
        _save_curves_picture(evaluation.history, folder / "curves.png")


# --------------------------------------------------------------------------------------------
# the writer


def _artifact_location(tracking_uri: str) -> Optional[str]:
    """For a local sqlite store, artifacts live beside the database file, not in the cwd."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return None  # file stores keep them inside the store; servers decide for themselves


def find_sweep_parent(client: MlflowClient, experiment_id: str, sweep_id: str):
    """The parent run of ``sweep_id`` in the experiment, or None."""
    query = f"tags.`zssrgan.kind` = 'sweep' AND tags.`zssrgan.sweep_id` = '{_check_sweep_id(sweep_id)}'"
    found = client.search_runs([experiment_id], query, max_results=1)
    return found[0] if found else None


def _check_sweep_id(sweep_id: str) -> str:
    if not _SWEEP_ID.match(sweep_id):
        raise ValueError(f"invalid sweep id {sweep_id!r}: use letters, digits, '.', '_', ':' or '-' (at most 200)")
    return sweep_id


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> Iterator:
    """Every matching run, page after page."""
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, ViewType.ACTIVE_ONLY, _PAGE,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        yield from page
        token = page.token
        if not token:
            return


class Tracker:
    """Writes one sweep (parent run) and its jobs (child runs) to one experiment."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        # MLflow prints two "View run at" lines per run ended on a server, burying the progress line
        os.environ.setdefault(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name, "true")
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = self._experiment(experiment)
        self.parent_id: Optional[str] = None

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None and found.lifecycle_stage == "deleted":
            raise ValueError(f"MLflow experiment {name!r} at {self.tracking_uri} was deleted: restore it "
                             f"(mlflow experiments restore --experiment-id {found.experiment_id}) or use another name")
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=_artifact_location(self.tracking_uri))
        except MlflowException:  # created meanwhile by another driver
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    # -- sweep ------------------------------------------------------------------------------

    def start_sweep(self, sweep_id: str, params: dict) -> str:
        """The parent run of ``sweep_id``. A resumed sweep reuses it (RUNNING again) and marks KILLED
        the job runs its earlier driver left RUNNING when it was stopped without cleaning up."""
        existing = find_sweep_parent(self.client, self.experiment_id, sweep_id)
        if existing is not None:
            self.parent_id = existing.info.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
            orphans = f"tags.`mlflow.parentRunId` = '{self.parent_id}' AND attributes.status = 'RUNNING'"
            for run in list(_search_all(self.client, self.experiment_id, orphans)):
                self.kill_job(run.info.run_id)
            return self.parent_id
        run = self.client.create_run(
            self.experiment_id,
            tags={"zssrgan.kind": "sweep", "zssrgan.sweep_id": sweep_id},
            run_name=f"sweep-{sweep_id}",
        )
        self.parent_id = run.info.run_id
        self._guarded(self.parent_id, lambda: self._log_params(
            self.parent_id, {k: _param_text(v) for k, v in params.items()}))
        return self.parent_id

    def end_sweep(self, status: str, summary: dict) -> None:
        """Numbers of ``summary`` as metrics, all of it as ``summary.json``; the parent ends ``status``."""
        if self.parent_id is None:
            raise RuntimeError("end_sweep called before start_sweep")
        numbers = {k: float(v) for k, v in summary.items()
                   if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        now = int(time.time() * 1000)
        with self._store_must_answer():
            for batch in _chunks([Metric(k, v, now, 0) for k, v in numbers.items()], MAX_METRICS_PER_BATCH):
                self.client.log_batch(self.parent_id, metrics=batch)
            self.client.log_dict(self.parent_id, json.loads(json.dumps(summary, default=str)), "summary.json")
            self.client.set_terminated(self.parent_id, status)

    def finished_keys(self) -> set[str]:
        """Job keys of every FINISHED run of the experiment: a key is a content hash, so work done
        by any earlier sweep with the same inputs need not be repeated."""
        runs = _search_all(self.client, self.experiment_id, "attributes.status = 'FINISHED'")
        return {run.data.tags["zssrgan.job_key"] for run in runs if "zssrgan.job_key" in run.data.tags}

    # -- jobs -------------------------------------------------------------------------------

    def start_job(self, job) -> str:
        """A RUNNING child run with the job's tags and params."""
        if self.parent_id is None:
            raise RuntimeError("start_job called before start_sweep")
        run_name = f"{job.method}-{job.item.name}-x{job.scale}-s{job.seed}"
        with self._store_must_answer():
            run = self.client.create_run(self.experiment_id, tags=job_tags(job, self.parent_id), run_name=run_name)
        run_id = run.info.run_id
        self._guarded(run_id, lambda: self._log_params(run_id, job_params(job)))
        return run_id

    def finish_job(self, run_id: str, job, evaluation) -> None:
        """Metrics, curves, device/host tags and artifacts, then FINISHED."""
        self._guarded(run_id, lambda: self._log_evaluation(run_id, evaluation))

    def fail_job(self, run_id: str, job, error: str, traceback: str) -> None:
        """FAILED, with a one-line ``zssrgan.error`` tag and the full ``traceback.txt``."""
        with self._store_must_answer():
            try:
                self.client.log_text(run_id, traceback or error, "traceback.txt")
            except Exception as exc:
                self._raise_if_lost(exc)  # a store that is gone cannot be marked either
                self._mark_failed(run_id, error)
                raise
            self._mark_failed(run_id, error)

    def kill_job(self, run_id: str) -> None:
        """Mark a running job KILLED; a run that already ended (a Ctrl-C can land between its
        FINISHED status and the driver's bookkeeping) keeps its status and its result."""
        with self._store_must_answer():
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_terminated(run_id, "KILLED")

    # -- helpers ----------------------------------------------------------------------------

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        items = [Param(k, v) for k, v in params.items()]
        for batch in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(run_id, params=batch)

    def _log_evaluation(self, run_id: str, evaluation) -> None:
        now = int(time.time() * 1000)
        tags = [RunTag("zssrgan.device", evaluation.device or "unknown"),
                RunTag("zssrgan.host", evaluation.host or "unknown")]
        scalars = [Metric(k, v, now, 0) for k, v in job_metrics(evaluation).items()]
        self.client.log_batch(run_id, tags=tags)
        for batch in _chunks(scalars + curve_metrics(evaluation.history, now), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=batch)
        with tempfile.TemporaryDirectory(prefix="zssrgan-artifacts-") as folder:
            write_artifacts(evaluation, Path(folder))
            self.client.log_artifacts(run_id, folder)
        self.client.set_terminated(run_id, "FINISHED")

    def _mark_failed(self, run_id: str, error: str) -> None:
        first_line = (error.strip().splitlines() or ["unknown error"])[0]
        self.client.set_tag(run_id, "zssrgan.error", _truncate(first_line, min(ERROR_TAG_LENGTH, MAX_TAG_VAL_LENGTH)))
        self.client.set_terminated(run_id, "FAILED")

    @contextlib.contextmanager
    def _store_must_answer(self) -> Iterator[None]:
        """A write that failed because the store itself is gone raises :class:`TrackingLost` (the
        sweep cannot go on); any other failure is the run's own and propagates unchanged."""
        try:
            yield
        except TrackingLost:
            raise
        except Exception as exc:
            self._raise_if_lost(exc)
            raise

    def _raise_if_lost(self, exc: Exception) -> None:
        """One short reachability probe after a failed call (MLflow's errors do not say which kind)."""
        try:
            check_reachable(self.tracking_uri)
        except TrackingUnavailable as gone:
            raise TrackingLost(str(gone)) from exc

    def _guarded(self, run_id: str, log) -> None:
        """Run ``log()``; if it fails, the run is marked FAILED with the reason and the error re-raised,
        so no run is left RUNNING with half its data; if the store is gone, nothing can be marked and
        :class:`TrackingLost` is raised, as :meth:`_store_must_answer` does."""
        try:
            log()
        except Exception as exc:
            self._raise_if_lost(exc)
            with contextlib.suppress(Exception):  # the store failed again; the original error says more
                self._mark_failed(run_id, f"recording the run failed: {type(exc).__name__}: {exc}")
            raise


# --------------------------------------------------------------------------------------------
# the read side, for the report builder


def _client_and_experiment(tracking_uri: str, experiment: str) -> tuple[MlflowClient, str]:
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ValueError(f"no MLflow experiment named {experiment!r} at {tracking_uri}; "
                         f"experiments there: {', '.join(names) or 'none'}")
    return client, found.experiment_id


def load_runs(tracking_uri: str, experiment: str, sweep_id: Optional[str] = None) -> pd.DataFrame:
    """One row per job run (sweep parents left out), optionally of one sweep, oldest first.

    Columns follow :func:`mlflow.search_runs`: ``run_id``, ``experiment_id``, ``status``,
    ``artifact_uri``, ``start_time``, ``end_time`` (UTC datetimes), then ``metrics.<name>``,
    ``params.<name>`` and ``tags.<name>`` (e.g. ``metrics.psnr_y``, ``tags.zssrgan.method``);
    a value a run did not log is NaN. Built with a client, so no global MLflow state changes.
    """
    client, experiment_id = _client_and_experiment(tracking_uri, experiment)
    query = "" if sweep_id is None else f"tags.`zssrgan.sweep_id` = '{_check_sweep_id(sweep_id)}'"
    rows = []
    for run in _search_all(client, experiment_id, query):
        if "zssrgan.job_key" not in run.data.tags:
            continue
        info = run.info
        rows.append({
            "run_id": info.run_id,
            "experiment_id": info.experiment_id,
            "status": info.status,
            "artifact_uri": info.artifact_uri,
            "start_time": pd.to_datetime(info.start_time, unit="ms", utc=True),
            "end_time": pd.to_datetime(info.end_time, unit="ms", utc=True) if info.end_time else pd.NaT,
            **{f"metrics.{k}": v for k, v in run.data.metrics.items()},
            **{f"params.{k}": v for k, v in run.data.params.items()},
            **{f"tags.{k}": v for k, v in run.data.tags.items()},
        })
    base = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    return pd.DataFrame(rows, columns=None if rows else base)


def metric_history(tracking_uri: str, run_id: str, key: str) -> pd.DataFrame:
    """Every logged value of one metric of one run (e.g. ``zssr_x2.loss``): columns ``step`` and
    ``value``, sorted by step; empty when the run never logged ``key``."""
    points = MlflowClient(tracking_uri=tracking_uri).get_metric_history(run_id, key)
    frame = pd.DataFrame({"step": [p.step for p in points], "value": [p.value for p in points]})
    return frame.sort_values("step", kind="stable").reset_index(drop=True)
