"""The tracking store itself: whether it can be used, and how long MLflow may retry a call to it.

A mistyped ``--tracking-uri`` or a server that stops answering must be reported in seconds with a
readable reason, not after MLflow's minutes of retries (:func:`check_reachable`,
:func:`bounded_mlflow_retries`).
"""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import quote, urlencode, urlparse

from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
)

from zssrgan.errors import UserError

UI_HOST, UI_PORT = "127.0.0.1", 5000  # where `zssrgan ui` serves a store's runs by default

# MLflow's own HTTP retries take about 4 minutes per call to give up on a server that refuses
# connections (7 retries, backoff factor 2), and each attempt may wait 120 s for one that does not
# answer. During a sweep they are bounded (see bounded_mlflow_retries): a refusing server stops
# the sweep in about 35 s, a silent one in about 2.5 minutes (6 attempts of 20 s), and a server
# restart of up to ~30 s goes unnoticed. A value the user set in the environment wins.
HTTP_RETRY_DEFAULTS = {MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "5", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.name: "1",
                       MLFLOW_HTTP_REQUEST_TIMEOUT.name: "20"}


class TrackingUnavailable(UserError, RuntimeError):
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


def absolute_uri(tracking_uri: str) -> str:
    """A local store's URI with an absolute path (``sqlite:///mlflow.db`` is relative to the current
    folder, so a command run elsewhere would look in another file); remote URIs unchanged."""
    path = _local_store_path(tracking_uri)
    if path is None:
        return tracking_uri
    return f"sqlite:///{path.resolve()}" if tracking_uri.startswith("sqlite:") else path.resolve().as_uri()


def require_existing(tracking_uri: str) -> None:
    """A reader (report, UI) must find a local store, not create an empty one where there is none
    (the error names the absolute path it looked at), and reach a server within seconds."""
    path = _local_store_path(tracking_uri)
    if path is None:
        check_reachable(tracking_uri)
    elif not path.exists():
        relative = "" if path.is_absolute() else f", relative to the current folder {Path.cwd()}"
        raise TrackingUnavailable(
            f"no MLflow store at {path.resolve()} (--tracking-uri {tracking_uri}{relative}): run this command "
            "in the folder where `zssrgan run` ran, or give the store's absolute path (sqlite:////abs/path/mlflow.db)")


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


def artifact_location(tracking_uri: str) -> Optional[str]:
    """For a local sqlite store, artifacts live beside the database file, not in the cwd."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return None  # file stores keep them inside the store; servers decide for themselves



# --------------------------------------------------------------------------------------------
# where to look at the runs


# The job runs of an experiment, best PSNR first: a filter on a tag every job run has lists them
# side by side, where the sweep's parent run would otherwise hold them folded under one row.
_RUNS_VIEW = urlencode({"workflowType": "machine_learning", "searchFilter": "tags.`zssrgan.method` LIKE '%'",
                        "orderByKey": "metrics.`psnr_y`", "orderByAsc": "false"}, quote_via=quote)


def runs_url(base_url: str, experiment_id: str) -> str:
    """An experiment's job runs in MLflow's UI. ``workflowType=machine_learning`` opens the
    model-training view: MLflow 3 remembers a GenAI / model-training choice per browser and may
    start on its GenAI overview (traces, token usage) instead."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{_RUNS_VIEW}"


def ui_hint(tracking_uri: str, experiment_id: str) -> str:
    """How to look at an experiment's runs: the link on a tracking server, else the ``zssrgan ui``
    command for the store (by its absolute path) and the link it serves."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {runs_url(tracking_uri, experiment_id)}"
    return (f"zssrgan ui --tracking-uri {absolute_uri(tracking_uri)}, then open "
            f"{runs_url(f'http://{UI_HOST}:{UI_PORT}', experiment_id)}")
