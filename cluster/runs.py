"""The read side of tracking, for the report builder: job runs as a DataFrame, metric histories."""
from __future__ import annotations

from typing import Optional

import pandas as pd
from mlflow import MlflowClient

from zssrgan.errors import InputError

from .store import absolute_uri
from .tracking import _check_sweep_id, _search_all


def _client_and_experiment(tracking_uri: str, experiment: str) -> tuple[MlflowClient, str]:
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise InputError(f"no MLflow experiment named {experiment!r} at {absolute_uri(tracking_uri)}; "
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
