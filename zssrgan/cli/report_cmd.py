"""``zssrgan report``: tables, figures and index.html for a finished sweep, also attached to its
parent run in MLflow (under ``report/``)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Optional

import pandas as pd

from cluster.jobs import DEFAULT_TRACKING_URI

from ..errors import InputError

help = "write the comparison report (tables, figures, index.html) of a sweep logged in MLflow"

ALL = "all"
_SWEEP_TAG = "tags.zssrgan.sweep_id"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", default="zssrgan", help="MLflow experiment (default zssrgan)")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI})")
    parser.add_argument("--sweep", default=None, metavar="ID",
                        help="sweep id to report (default: the experiment's latest sweep; "
                             "'all': every run of the experiment, one per job)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for the report")
    parser.add_argument("--reference-method", metavar="NAME",
                        help="in a grid sweep's ablation, compare every run with this method's run on the same image, "
                             "seed, scale and grid point (default: with the same method at the ablated key's first "
                             "value); a method's name or a report row's, e.g. 'kernelgan-zssr [kernelgan]'")
    parser.add_argument("--no-attach", action="store_true",
                        help="do not attach the report to the sweep's parent run in MLflow")


def select_sweep(runs: pd.DataFrame, sweep: Optional[str]) -> tuple[pd.DataFrame, str]:
    """(runs of ``sweep``, its id); None picks the sweep of the most recently started run, ``all``
    keeps every run and names the latest sweep (the one the report is attached to)."""
    if _SWEEP_TAG not in runs.columns or runs[_SWEEP_TAG].isna().all():
        raise InputError("the runs carry no zssrgan.sweep_id tag; were they written by `zssrgan run`?")
    ordered = runs.sort_values("start_time", kind="stable") if "start_time" in runs.columns else runs
    latest = str(ordered[_SWEEP_TAG].dropna().iloc[-1])
    if sweep == ALL:
        return runs, latest
    sweep = sweep or latest
    chosen = runs[runs[_SWEEP_TAG] == sweep]
    if chosen.empty:
        known = ", ".join(dict.fromkeys(ordered[_SWEEP_TAG].dropna().astype(str))) or "none"
        raise InputError(f"no runs of sweep {sweep!r} in this experiment; its sweeps: {known}")
    return chosen, sweep


def mlflow_access(tracking_uri: str, cache: Path):
    """The report's ``(artifact, history)`` functions for one store; artifacts are downloaded
    into ``cache``."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from cluster.runs import metric_history

    def artifact(run_id: str, name: str) -> Optional[Path]:
        try:
            return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name,
                                                            dst_path=str(cache / run_id), tracking_uri=tracking_uri))
        except (MlflowException, OSError):  # not logged by this run (bicubic has no kernel)
            return None

    def history(run_id: str, key: str) -> pd.DataFrame:
        return metric_history(tracking_uri, run_id, key)

    return artifact, history


def write_report(tracking_uri: str, experiment: str, out: str | Path, sweep: Optional[str] = None,
                 attach: bool = True, reference_method: Optional[str] = None) -> Path:
    """Build the report of ``sweep`` into ``out`` and attach the folder to the sweep's parent run
    (artifacts under ``report/``); returns ``out/index.html``. ``reference_method``: see
    :func:`zssrgan.report.build_report`."""
    from mlflow import MlflowClient

    from cluster.runs import load_runs
    from cluster.store import absolute_uri, require_existing
    from cluster.tracking import find_sweep_parent

    from ..report import build_report

    require_existing(tracking_uri)
    runs = load_runs(tracking_uri, experiment)
    if runs.empty:
        raise InputError(f"experiment {experiment!r} at {absolute_uri(tracking_uri)} holds no job runs yet")
    runs, sweep_id = select_sweep(runs, sweep)
    client = MlflowClient(tracking_uri=tracking_uri)
    parent = find_sweep_parent(client, str(runs["experiment_id"].iloc[0]), sweep_id)
    context = {"experiment": experiment, "sweep": "all sweeps" if sweep == ALL else sweep_id,
               "tracking URI": absolute_uri(tracking_uri)}
    if parent is not None and sweep != ALL:
        params = parent.data.params
        context.update({k: params[k] for k in ("preset", "data", "overrides", "grid") if params.get(k)})
        jobs = int(params.get("jobs", 0) or 0)
        if jobs > runs["tags.zssrgan.job_key"].nunique():
            context["note"] = (f"{jobs - runs['tags.zssrgan.job_key'].nunique()} of the sweep's {jobs} jobs were "
                               f"finished by earlier sweeps and are not shown; use --sweep all to include them")

    with tempfile.TemporaryDirectory(prefix="zssrgan-report-") as cache:
        index = build_report(runs, out, *mlflow_access(tracking_uri, Path(cache)),
                             title=f"zssrgan comparison: {experiment}", context=context,
                             reference_method=reference_method)
    if attach and parent is not None:
        client.log_artifacts(parent.info.run_id, str(index.parent), artifact_path="report")
    return index


def run(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from cluster.store import bounded_mlflow_retries, ui_hint

    with bounded_mlflow_retries():  # a server lost on the way fails in seconds, not minutes
        index = write_report(args.tracking_uri, args.experiment, args.out, args.sweep, attach=not args.no_attach,
                             reference_method=args.reference_method)
        experiment = MlflowClient(tracking_uri=args.tracking_uri).get_experiment_by_name(args.experiment)
    print(f"report: {index}")
    print(f"browse the runs: {ui_hint(args.tracking_uri, experiment.experiment_id)}")
    return 0
