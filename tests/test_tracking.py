"""cluster/tracking.py against real MLflow stores: a sqlite file and a real ``mlflow server``."""
from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from mlflow import MlflowClient

from cluster.jobs import Job
from cluster.records import git_commit
from cluster.runs import load_runs, metric_history
from cluster.store import HTTP_RETRY_DEFAULTS, TrackingUnavailable, bounded_mlflow_retries, check_reachable
from cluster.tracking import Tracker
from zssrgan.cli import EXIT_USER_ERROR, main
from zssrgan.config import flatten, preset
from zssrgan.datasets import ImageItem
from zssrgan.io import load_image
from zssrgan.results import Evaluation

CURVE_STEPS = 600  # 1200 curve points: more than one 1000-metric batch


def make_job(tmp: Path, key: str, method: str = "zssrgan-fixed", sweep_id: str = "sweep-1", grid=None):
    item = ImageItem(name="im_1", lr_path=tmp / "lr" / "im_1.png", gt_path=tmp / "gt" / "im_1.png",
                     kernel_paths={2: tmp / "gt_k_x2" / "im_1.mat"})
    return Job(key=key, kind="method", method=method, item=item, scale=2, seed=3, cfg=preset("quick"),
               grid=grid or {"zssrgan.disc_ratio": 0.3}, dataset="classic", sweep_id=sweep_id,
               estimate_key="est-" + key)


def make_evaluation() -> Evaluation:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[-6:7, -6:7]
    kernel = np.exp(-(x**2 + y**2) / 4.0)
    history = {"kernelgan": [{"step": i, "loss_g": 1.0 / (i + 1), "loss_d": 0.5} for i in range(CURVE_STEPS)],
               "zssr_x2": [{"step": i, "loss": 0.1 - 0.001 * i, "lr": 1e-3} for i in range(0, 100, 10)]}
    return Evaluation(
        metrics={"psnr_y": 27.5, "ssim_y": 0.81, "kernel_error": 0.02},
        timings={"total": 12.0, "kernelgan": 8.0, "zssr_x2": 4.0, "queue_wait": 0.5},
        history=history,
        sr=rng.random((20, 24, 3), dtype=np.float32),
        kernel=kernel / kernel.sum(),
        true_kernel=np.full((13, 13), 1 / 169),
        device="cpu",
        host="testhost",
    )


def artifact_names(client: MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)}


def check_logged_job(uri: str, run_id: str, job, evaluation: Evaluation, parent_id: str) -> MlflowClient:
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["mlflow.parentRunId"] == parent_id
    assert {k: tags[k] for k in ("zssrgan.job_key", "zssrgan.sweep_id", "zssrgan.method", "zssrgan.image",
                                 "zssrgan.scale", "zssrgan.seed", "zssrgan.grid", "zssrgan.device",
                                 "zssrgan.host")} == {
        "zssrgan.job_key": job.key, "zssrgan.sweep_id": "sweep-1", "zssrgan.method": "zssrgan-fixed",
        "zssrgan.image": "im_1", "zssrgan.scale": "2", "zssrgan.seed": "3",
        "zssrgan.grid": "zssrgan.disc_ratio=0.3", "zssrgan.device": "cpu", "zssrgan.host": "testhost"}
    assert params["method"] == "zssrgan-fixed" and params["scale"] == "2" and params["seed"] == "3"
    assert params["dataset"] == "classic" and params["image"] == "im_1"
    assert params["lr_path"] == str(job.item.lr_path) and params["gt_path"] == str(job.item.gt_path)
    for key, value in flatten(job.cfg).items():
        assert params[f"cfg.{key}"] == str(value)
    quick_iters = preset("quick").kernelgan.iters
    assert quick_iters != preset("paper").kernelgan.iters
    assert params["cfg.kernelgan.iters"] == str(quick_iters)  # the job's own preset, not the default
    assert {"version.zssrgan", "version.torch", "version.numpy", "version.ray", "version.mlflow"} <= set(params)
    assert params["version.numpy"] == np.__version__
    assert params["git_commit"] == git_commit()
    assert params["git_commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", params["git_commit"])
    assert metrics["psnr_y"] == 27.5 and metrics["kernel_error"] == 0.02
    assert metrics["time_total"] == 12.0 and metrics["time_queue_wait"] == 0.5
    assert metrics["its_per_sec"] == pytest.approx((CURVE_STEPS + 91) / 12.0)
    curve = metric_history(uri, run_id, "kernelgan.loss_g")
    assert list(curve["step"]) == list(range(CURVE_STEPS))
    assert np.allclose(curve["value"], [1.0 / (i + 1) for i in range(CURVE_STEPS)])
    assert list(metric_history(uri, run_id, "zssr_x2.lr")["step"]) == list(range(0, 100, 10))
    assert artifact_names(client, run_id) == {"sr.png", "kernel.npy", "kernel.mat", "kernel.png",
                                              "true_kernel.npy", "curves.png"}
    with tempfile.TemporaryDirectory() as folder:
        sr = load_image(client.download_artifacts(run_id, "sr.png", folder))
        kernel_mat = scipy.io.loadmat(client.download_artifacts(run_id, "kernel.mat", folder))["Kernel"]
        kernel_npy = np.load(client.download_artifacts(run_id, "kernel.npy", folder), allow_pickle=False)
    assert np.abs(sr - evaluation.sr).max() <= 0.5 / 255 + 1e-6  # 8-bit PNG
    assert np.allclose(kernel_mat, evaluation.kernel) and np.allclose(kernel_npy, evaluation.kernel)
    return client


@pytest.fixture
def tracker(sqlite_uri):
    return Tracker(sqlite_uri, "zssrgan-test")


def test_job_run_records_the_whole_schema_in_a_sqlite_store(tracker, sqlite_uri, tmp_path):
    parent = tracker.start_sweep("sweep-1", {"methods": "zssr,zssrgan-fixed", "scales": "2"})
    job, evaluation = make_job(tmp_path, "k1"), make_evaluation()
    run_id = tracker.start_job(job)
    assert MlflowClient(sqlite_uri).get_run(run_id).info.status == "RUNNING"
    tracker.finish_job(run_id, job, evaluation)
    check_logged_job(sqlite_uri, run_id, job, evaluation, parent)
    # artifacts sit beside the database, not in whatever folder the driver was started from
    assert list((tmp_path / "mlartifacts").rglob("sr.png"))
    # MLflow 3's UI shows the experiment's runs, not its GenAI overview
    experiment = MlflowClient(sqlite_uri).get_experiment(tracker.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_failed_and_killed_runs_are_closed_and_not_counted_as_finished(tracker, sqlite_uri, tmp_path):
    tracker.start_sweep("sweep-1", {})
    done = make_job(tmp_path, "done")
    tracker.finish_job(tracker.start_job(done), done, make_evaluation())
    failed_id = tracker.start_job(make_job(tmp_path, "failed"))
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: CUDA out of memory'
    tracker.fail_job(failed_id, None, "RuntimeError: CUDA out of memory\nTried to allocate 2 GiB", trace)
    killed_id = tracker.start_job(make_job(tmp_path, "killed"))
    tracker.kill_job(killed_id)
    tracker.start_job(make_job(tmp_path, "running"))

    client = MlflowClient(sqlite_uri)
    failed = client.get_run(failed_id)
    assert failed.info.status == "FAILED"
    assert failed.data.tags["zssrgan.error"] == "RuntimeError: CUDA out of memory"
    assert artifact_names(client, failed_id) == {"traceback.txt"}
    with tempfile.TemporaryDirectory() as folder:
        assert Path(client.download_artifacts(failed_id, "traceback.txt", folder)).read_text() == trace
    assert client.get_run(killed_id).info.status == "KILLED"
    assert tracker.finished_jobs() == {"done": True}  # made by this code


def test_a_run_whose_logging_fails_is_marked_failed_not_left_half_written(tracker, sqlite_uri, tmp_path):
    tracker.start_sweep("sweep-1", {})
    job = make_job(tmp_path, "bad")
    job.item.lr_path = tmp_path / ("x" * 200) / ("y" * 7000)  # longer than MLflow takes for a param
    run_id = tracker.start_job(job)
    logged = MlflowClient(sqlite_uri).get_run(run_id).data.params["lr_path"]
    assert len(logged) == 6000 and logged.startswith(str(tmp_path)) and logged.endswith("...")
    evaluation = make_evaluation()
    evaluation.metrics["psnr_y"] = "not a number"
    with pytest.raises(ValueError, match="could not convert string to float: 'not a number'"):
        tracker.finish_job(run_id, job, evaluation)
    run = MlflowClient(sqlite_uri).get_run(run_id)
    assert run.info.status == "FAILED"
    assert "not a number" in run.data.tags["zssrgan.error"]
    assert tracker.finished_jobs() == {}


def test_resuming_a_sweep_reuses_its_parent_run(sqlite_uri, tmp_path):
    first = Tracker(sqlite_uri, "zssrgan-test")
    parent = first.start_sweep("sweep-1", {"methods": "zssr"})
    orphan = first.start_job(make_job(tmp_path, "cut-short"))  # its driver is stopped without cleanup
    again = Tracker(sqlite_uri, "zssrgan-test")
    assert again.start_sweep("sweep-1", {"methods": "zssr"}) == parent
    client = MlflowClient(sqlite_uri)
    assert client.get_run(parent).info.status == "RUNNING"
    assert client.get_run(orphan).info.status == "KILLED"
    summary = {"status": "FINISHED", "finished": 3, "failed": 1, "table": [{"method": "zssr", "psnr_y": 27.0}]}
    again.end_sweep("FINISHED", summary)
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert run.data.tags["zssrgan.kind"] == "sweep" and run.data.params["methods"] == "zssr"
    assert run.data.metrics == {"finished": 3, "failed": 1}
    with tempfile.TemporaryDirectory() as folder:
        assert json.loads(Path(client.download_artifacts(parent, "summary.json", folder)).read_text()) == summary
    assert again.start_sweep("sweep-2", {}) != parent
    client.delete_experiment(again.experiment_id)
    with pytest.raises(ValueError, match="'zssrgan-test' .* was deleted"):
        Tracker(sqlite_uri, "zssrgan-test")


def test_load_runs_returns_job_runs_of_one_sweep(tracker, sqlite_uri, tmp_path):
    tracker.start_sweep("sweep-1", {})
    job = make_job(tmp_path, "a")
    tracker.finish_job(tracker.start_job(job), job, make_evaluation())
    other = Tracker(sqlite_uri, "zssrgan-test")
    other.start_sweep("sweep-2", {})
    other.kill_job(other.start_job(make_job(tmp_path, "b", sweep_id="sweep-2")))

    every = load_runs(sqlite_uri, "zssrgan-test")
    assert sorted(every["tags.zssrgan.job_key"]) == ["a", "b"]  # no sweep parents
    one = load_runs(sqlite_uri, "zssrgan-test", sweep_id="sweep-1")
    assert list(one["tags.zssrgan.job_key"]) == ["a"] and one["metrics.psnr_y"].iloc[0] == 27.5
    assert one["params.cfg.zssr.iters"].iloc[0] == str(preset("quick").zssr.iters) and one["status"].iloc[0] == "FINISHED"
    assert load_runs(sqlite_uri, "zssrgan-test", sweep_id="sweep-3").empty
    with pytest.raises(ValueError, match="no MLflow experiment named 'nope'"):
        load_runs(sqlite_uri, "nope")


@pytest.mark.timeout(120)  # a hang guard: MLflow's own retries would take minutes
@pytest.mark.parametrize("command", [["report"], ["ui"]])
def test_the_readers_report_an_unreachable_server_in_one_line(tmp_path, capsys, command):
    command = command + ["--out", str(tmp_path / "report")] if command == ["report"] else command
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert main([*command, "--tracking-uri", closed, "--experiment", "x"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"zssrgan {command[0]}: error: cannot reach the MLflow tracking server at {closed}: ")
    assert err.count("\n") == 1  # one line: no traceback, no MLflow retry log


@pytest.mark.timeout(60)  # a hang guard: MLflow's own retries would take minutes
def test_check_reachable_fails_fast_and_clearly(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(TrackingUnavailable, match=f"cannot reach the MLflow tracking server at {closed}"):
        check_reachable(closed, timeout_s=2.0)

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TrackingUnavailable, match="not a folder"):
        check_reachable(f"sqlite:///{blocker / 'mlflow.db'}")
    with pytest.raises(TrackingUnavailable, match="does not exist"):
        check_reachable(f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}")
    check_reachable(f"sqlite:///{tmp_path / 'mlflow.db'}")
    check_reachable(str(tmp_path / "mlruns"))


def test_mlflow_retries_are_bounded_for_a_sweep_unless_the_user_set_them(monkeypatch):
    for name in HTTP_RETRY_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    with bounded_mlflow_retries():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"  # MLflow's own default: 7, minutes per call
        assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"  # the user's value wins
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # the process's environment as it was
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_logging_through_a_real_mlflow_server(mlflow_server, tmp_path):
    check_reachable(mlflow_server)
    tracker = Tracker(mlflow_server, "zssrgan-server-test")
    parent = tracker.start_sweep("sweep-1", {"methods": "zssrgan-fixed"})
    job, evaluation = make_job(tmp_path, "server-job"), make_evaluation()
    run_id = tracker.start_job(job)
    tracker.finish_job(run_id, job, evaluation)
    check_logged_job(mlflow_server, run_id, job, evaluation, parent)
    assert tracker.finished_jobs() == {"server-job": True}
    assert list(load_runs(mlflow_server, "zssrgan-server-test")["run_id"]) == [run_id]
