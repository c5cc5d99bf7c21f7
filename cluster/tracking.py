"""MLflow tracking: one parent run per sweep, one child run per job (schema in ARCHITECTURE.md).

The sweep driver is the only MLflow writer: workers send plain results back and the driver logs
them here through :class:`mlflow.MlflowClient`, which never touches MLflow's global "active run"
state. Every child run ends FINISHED, FAILED (tag ``zssrgan.error``) or KILLED, never half-written.
Store checks live in ``store.py``, what a run records in ``records.py`` and ``artifacts.py``, the
read side in ``runs.py``.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.environment_variables import MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH, MAX_TAG_VAL_LENGTH

from zssrgan.errors import InputError

from .artifacts import write_artifacts
from .records import (_chunks, _param_text, _truncate, curve_metrics, job_metrics, job_params, job_tags,
                      made_by_this_code, run_name)
from .store import TrackingLost, TrackingUnavailable, artifact_location, check_reachable

ERROR_TAG_LENGTH = 500  # zssrgan.error stays one short, readable line; the traceback is an artifact
_SWEEP_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
_PAGE = 1000
# Marks an experiment as model training rather than GenAI (a plain tag on MLflow 2). MLflow 3.17's
# UI still opens an experiment on a per-browser choice, which store.runs_url's link sets.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def find_sweep_parent(client: MlflowClient, experiment_id: str, sweep_id: str):
    """The parent run of ``sweep_id`` in the experiment, or None."""
    query = f"tags.`zssrgan.kind` = 'sweep' AND tags.`zssrgan.sweep_id` = '{_check_sweep_id(sweep_id)}'"
    found = client.search_runs([experiment_id], query, max_results=1)
    return found[0] if found else None


def _check_sweep_id(sweep_id: str) -> str:
    if not _SWEEP_ID.match(sweep_id):
        raise InputError(f"invalid sweep id {sweep_id!r}: use letters, digits, '.', '_', ':' or '-' (at most 200)")
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
            raise InputError(f"MLflow experiment {name!r} at {self.tracking_uri} was deleted: restore it "
                             f"(mlflow experiments restore --experiment-id {found.experiment_id}) or use another name")
        if found is not None:
            if EXPERIMENT_KIND[0] not in found.tags:  # created by an earlier version
                self.client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location(self.tracking_uri),
                                                 tags=dict([EXPERIMENT_KIND]))
        except MlflowException:  # created meanwhile by another driver
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    # -- sweep ------------------------------------------------------------------------------

    def start_sweep(self, sweep_id: str, params: dict, sweep_file: str = "") -> str:
        """The parent run of ``sweep_id``, with ``sweep_file`` (the effective sweep as YAML) attached
        as ``sweep.yaml``. A resumed sweep reuses it (RUNNING again, ``sweep.yaml`` replaced by the
        latest command's) and marks KILLED the job runs its earlier driver left RUNNING when it was
        stopped without cleaning up."""
        existing = find_sweep_parent(self.client, self.experiment_id, sweep_id)
        if existing is not None:
            self.parent_id = existing.info.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
            orphans = f"tags.`mlflow.parentRunId` = '{self.parent_id}' AND attributes.status = 'RUNNING'"
            for run in list(_search_all(self.client, self.experiment_id, orphans)):
                self.kill_job(run.info.run_id)
        else:
            run = self.client.create_run(
                self.experiment_id,
                tags={"zssrgan.kind": "sweep", "zssrgan.sweep_id": sweep_id},
                run_name=f"sweep-{sweep_id}",
            )
            self.parent_id = run.info.run_id
            self._guarded(self.parent_id, lambda: self._log_params(
                self.parent_id, {k: _param_text(v) for k, v in params.items()}))
        if sweep_file:
            self._guarded(self.parent_id, lambda: self.client.log_text(self.parent_id, sweep_file, "sweep.yaml"))
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

    def finished_jobs(self) -> dict[str, bool]:
        """Job key -> made by this code, for every key with a FINISHED run in the experiment: a key
        is a content hash, so work done by any earlier sweep with the same inputs need not be
        repeated. False when each of its FINISHED runs names another git commit or zssrgan version."""
        out: dict[str, bool] = {}
        for run in _search_all(self.client, self.experiment_id, "attributes.status = 'FINISHED'"):
            key = run.data.tags.get("zssrgan.job_key")
            if key is not None:
                out[key] = out.get(key, False) or made_by_this_code(run.data.params)
        return out

    # -- jobs -------------------------------------------------------------------------------

    def start_job(self, job) -> str:
        """A RUNNING child run with the job's tags and params."""
        if self.parent_id is None:
            raise RuntimeError("start_job called before start_sweep")
        with self._store_must_answer():
            run = self.client.create_run(self.experiment_id, tags=job_tags(job, self.parent_id), run_name=run_name(job))
        run_id = run.info.run_id
        self._guarded(run_id, lambda: self._log_params(run_id, job_params(job)))
        return run_id

    def finish_job(self, run_id: str, job, evaluation) -> None:
        """Metrics, curves, device/host tags and artifacts, then FINISHED."""
        self._guarded(run_id, lambda: self._log_evaluation(run_id, evaluation))

    def fail_job(self, run_id: str, job, error: str, traceback: str,
                 metrics: Optional[dict[str, float]] = None) -> None:
        """FAILED, with a one-line ``zssrgan.error`` tag, the full ``traceback.txt`` and the
        ``metrics`` known of the failure (a failed estimate's diagnostics)."""
        with self._store_must_answer():
            try:
                if metrics:
                    now = int(time.time() * 1000)
                    self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
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


