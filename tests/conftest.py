"""Shared fixtures: one torch thread, a real MLflow tracking server on 127.0.0.1, a throwaway sqlite
store; tests marked ``cuda`` run only where torch sees a CUDA device."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import torch

from zssrgan.cli.ui_cmd import healthy, stop_group
from zssrgan.device import set_threads

SERVER_START_TIMEOUT_S = 300  # mlflow imports slowly and creates its tables on a busy 2-core CI box


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, saying why, where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU: torch.cuda.is_available() is False on this machine")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def nothing_written_where_pytest_runs() -> Iterator[None]:
    """Every store and artifact a test makes lives in its temporary folders: MLflow's defaults
    (``./mlruns``, ``./mlartifacts``, ``./mlflow.db``) must not appear in the folder pytest runs in."""
    defaults = [Path.cwd() / name for name in ("mlruns", "mlartifacts", "mlflow.db")]
    before = {path for path in defaults if path.exists()}
    yield
    made = [path.name for path in defaults if path.exists() and path not in before]
    assert not made, f"the tests wrote {', '.join(made)} into {Path.cwd()}"


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tests train tiny networks on a shared 2-core machine, where two spinning threads per process
    run them many times slower than one; one thread is also bit-reproducible on CPU."""
    set_threads(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_mlflow_server(root: Path, port: int) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a real ``mlflow server`` whose sqlite store and proxied
    artifacts live in ``root`` (so a server started again on the same ``root`` has the same runs)."""
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "ab")
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts")]
    # its own process group, so teardown stops the server and the workers it forks, and nothing else
    # no background job runners (MLflow's GenAI jobs): seven idle processes the tests do not need
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (root / "server.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server did not become ready at {url}:\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(server)
        log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 for the whole session (sqlite backend, proxied artifacts)."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), free_port()) as url:
        yield url


@pytest.fixture(scope="session")
def _empty_sqlite_store(tmp_path_factory) -> Path:
    """An MLflow sqlite database with its tables created, to copy: creating them takes seconds."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def sqlite_uri(tmp_path, _empty_sqlite_store) -> str:
    """A fresh sqlite tracking store; its artifacts land beside the database, inside tmp_path."""
    shutil.copyfile(_empty_sqlite_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
