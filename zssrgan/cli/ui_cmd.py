"""``zssrgan ui``: MLflow's web UI for the store a sweep wrote, on this machine, with links that open
each experiment's runs table (not MLflow 3's GenAI overview)."""
from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from cluster.jobs import DEFAULT_TRACKING_URI
from cluster.store import UI_HOST, UI_PORT

from ..errors import InputError, UserError

help = "serve MLflow's UI for a tracking store on 127.0.0.1 and print the links to the runs"

START_TIMEOUT_S = 120.0  # MLflow imports slowly and may create the store's tables first


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"the store `zssrgan run` wrote (default {DEFAULT_TRACKING_URI}); a tracking server's "
                             "URL only prints the links")
    parser.add_argument("--experiment", default=None,
                        help="link this experiment only (default: every experiment in the store)")
    parser.add_argument("--host", default=UI_HOST,
                        help=f"address to listen on (default {UI_HOST}: this machine only; the UI has no login)")
    parser.add_argument("--port", type=int, default=UI_PORT, help=f"port to listen on (default {UI_PORT})")


def experiment_links(tracking_uri: str, base_url: str, only: str | None = None) -> list[str]:
    """``name: runs link`` for ``only``, or for every active experiment of the store that holds runs."""
    from mlflow import MlflowClient

    from cluster.store import absolute_uri, runs_url

    client = MlflowClient(tracking_uri=tracking_uri)
    if only is not None:
        experiments = [e for e in client.search_experiments() if e.name == only]
        if not experiments:
            raise InputError(f"no MLflow experiment named {only!r} at {absolute_uri(tracking_uri)}")
    else:
        experiments = [e for e in client.search_experiments() if client.search_runs([e.experiment_id], max_results=1)]
    return [f"{e.name}: {runs_url(base_url, e.experiment_id)}" for e in experiments]


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # as the server will: the closed connections of a UI stopped a moment ago do not count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}): another UI may be running there; "
                            "choose another --port") from None


def healthy(url: str) -> bool:
    """Whether the MLflow server at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to a server's process group (MLflow forks its workers), SIGKILL to what is left of
    it after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run(args: argparse.Namespace) -> int:
    from cluster.store import absolute_uri, artifact_location, bounded_mlflow_retries, require_existing

    uri = absolute_uri(args.tracking_uri)
    require_existing(uri)
    if uri.startswith(("http://", "https://")):  # a tracking server serves its own UI
        with bounded_mlflow_retries():
            print("\n".join(experiment_links(uri, uri, args.experiment)))
        return 0
    if not 1 <= args.port <= 65535:
        raise InputError(f"--port must be 1 to 65535, got {args.port}")
    if not _loopback(args.host):
        print(f"warning: the UI has no login: anyone who reaches {args.host}:{args.port} can read and delete "
              "these runs", file=sys.stderr)
    _check_port_free(args.host, args.port)
    base = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}"
    links = experiment_links(uri, base, args.experiment)  # before starting: a bad --experiment fails now
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port), "--workers", "1"]
    location = artifact_location(uri)  # our experiments name their own; new ones go beside the store
    if location:
        command += ["--artifacts-destination", location]
    # no background job runners: they serve MLflow's GenAI features, which a benchmark does not use
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    server = subprocess.Popen(command, env=env, start_new_session=True)
    stop = signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop ends the server too
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(base):
            if server.poll() is not None:
                raise UserError(f"the MLflow UI stopped while starting (exit status {server.returncode}); "
                                "its messages are above")
            if time.monotonic() > deadline:
                raise UserError(f"the MLflow UI did not answer on {base} within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        print(f"MLflow UI for {uri} on {base} (Ctrl-C stops it); the runs of each experiment:", flush=True)
        print("\n".join(links) or "(no runs yet)", flush=True)
        server.wait()
        return 0 if server.returncode == 0 else 2
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, stop)
        stop_group(server)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
