"""``zssrgan ui``: a real MLflow UI server started on 127.0.0.1 for a sqlite store, the links it
prints, and its clean stop."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from cluster.jobs import Job
from cluster.tracking import Tracker
from conftest import SERVER_START_TIMEOUT_S, free_port
from zssrgan.cli import EXIT_USER_ERROR, main
from zssrgan.config import preset
from zssrgan.datasets import ImageItem

ROOT = Path(__file__).resolve().parent.parent


def _store(folder: Path) -> str:
    """A sqlite store in ``folder`` with one sweep and one (killed) job run in experiment ``ui``."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    tracker = Tracker(uri, "ui")
    tracker.start_sweep("sweep-ui", {})
    item = ImageItem(name="im_1", lr_path=folder / "im_1.png")
    job = Job(key="k1", kind="method", method="bicubic", item=item, scale=2, seed=0, cfg=preset("quick"),
              grid={}, dataset="d", sweep_id="sweep-ui")
    tracker.kill_job(tracker.start_job(job))
    return uri


def _read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    """What ``process`` printed until a line holding ``marker`` (or it ended, or ``timeout`` passed)."""
    lines: list[str] = []

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if marker in line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return "".join(lines)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_ui_serves_the_store_on_localhost_with_links_to_its_job_runs(tmp_path):
    uri = _store(tmp_path)
    experiment_id = MlflowClient(uri).get_experiment_by_name("ui").experiment_id
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "zssrgan.cli", "ui", "--tracking-uri", "sqlite:///mlflow.db",
                           "--port", str(port)], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        printed = _read_until(ui, "ui: http", SERVER_START_TIMEOUT_S)
        base = f"http://127.0.0.1:{port}"
        link = f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&"
        assert f"ui: {link}" in printed, printed
        assert "Default:" not in printed  # an experiment without runs is not listed
        # the link's filter, as the UI sends it: the job run, without its sweep's parent run
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(printed.split("ui: ")[1].strip()).fragment.split("?")[1])
        found = _post(f"{base}/ajax-api/2.0/mlflow/runs/search",
                      {"experiment_ids": [experiment_id], "filter": query["searchFilter"][0]})
        keys = [tag["value"] for run in found["runs"] for tag in run["data"]["tags"] if tag["key"] == "zssrgan.job_key"]
        assert len(found["runs"]) == 1 and keys == ["k1"]
        assert query["orderByKey"] == ["metrics.`psnr_y`"] and query["orderByAsc"] == ["false"]
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 0
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # closed connections may linger
            sock.bind(("127.0.0.1", port))  # nothing listens there any more: the server went with it
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
        ui.wait()


def test_ui_refuses_a_missing_store_and_a_busy_port(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["ui"]) == EXIT_USER_ERROR
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()
    _store(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["ui", "--port", str(busy.getsockname()[1])]) == EXIT_USER_ERROR
    assert "choose another --port" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [(["--experiment", "nope"], "no MLflow experiment named 'nope'"),
                                           (["--port", "70000"], "--port must be 1 to 65535")])
def test_ui_refuses_bad_options_before_starting_a_server(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    _store(tmp_path)
    assert main(["ui", *argv]) == EXIT_USER_ERROR
    assert message in capsys.readouterr().err
