"""The distributed runner end to end: real Ray (a two-node cluster, one GPU resource per node),
real MLflow (sqlite stores and a real ``mlflow server``), tiny images and budgets.

The fault-injection tests (a killed worker, Ctrl-C, a node an autoscaler adds, a tracking server
that stops) run the test-only method ``fault_gate:gated`` (``tests/fault_gate.py``, a plugin): its
jobs wait until the test lets them through, so each fault lands while a job is certainly running,
whatever the machine's speed, and each test checks that its fault happened."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import signal
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from mlflow import MlflowClient
from ray.cluster_utils import Cluster

import fault_gate
from cluster.driver import SweepError, format_summary, run_sweep, worker_shape
from cluster.jobs import SweepSpec, expand
from cluster.runs import load_runs
from cluster.store import TrackingLost, TrackingUnavailable, artifact_location
from conftest import free_port, running_mlflow_server
from fault_gate import Gate
from zssrgan.cli import main
from zssrgan.datasets import make_dataset
from zssrgan.io import load_image, save_image

ROOT = Path(__file__).resolve().parent.parent
TINY = ["kernelgan.iters=20", "kernelgan.input_crop=32", "kernelgan.shave=0", "kernelgan.n_crop_positions=50",
        "strict_estimates=false",
        "zssr.iters=10", "zssr.crop=24", "device=cpu"]
METHODS = ["bicubic", "kernelgan-zssr"]
SWEEP_END_S = 300  # generous: a sweep of tiny or gated jobs that runs longer is stuck


@pytest.fixture(scope="module")
def gate_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gate")


@pytest.fixture(scope="module")
def two_gpu_nodes(gate_folder):
    """Two Ray nodes with one CPU and one advertised GPU each: every sweep of this module runs one
    job per GPU (on the CPU: the jobs ask for ``device=cpu``). The workers can run the test-only
    method ``fault_gate:gated``."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1})
    cluster.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=cluster.address, logging_level="WARNING", runtime_env=fault_gate.ray_runtime_env(gate_folder))
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def gate(gate_folder) -> Gate:
    """The gate, closed; opened at the end so that no job of a failed test waits on."""
    gate = Gate(gate_folder)
    gate.close()
    yield gate
    gate.open()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two 40x40 LR images with ground truth and true kernels (DIV2KRK layout)."""
    hr = tmp_path_factory.mktemp("hr")
    for name in ("baby", "bird"):
        save_image(hr / f"{name}.png", load_image(ROOT / "benchmarks/data/classic" / f"{name}.png")[:80, :80])
    return make_dataset(hr, tmp_path_factory.mktemp("sets") / "div2krk", scales=(2,))


@pytest.fixture(scope="module")
def first_sweep(two_gpu_nodes, dataset, tmp_path_factory):
    """The sweep of 2 images x 2 methods, run once through the command line into a sqlite store."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    argv = ["run", "--data", str(dataset), "--methods", ",".join(METHODS), "--scales", "2", "--preset", "quick",
            "--tracking-uri", uri, "--experiment", "sweep"] + [a for s in TINY for a in ("--set", s)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return uri, argv, code, out.getvalue()


def _spec(data, uri, methods=METHODS, experiment="sweep", overrides=TINY, **extra) -> SweepSpec:
    return SweepSpec(data=[str(data)], methods=list(methods), scales=[2], preset="quick", overrides=overrides,
                     tracking_uri=uri, experiment=experiment, **{"progress": False, **extra})


def _runs(uri, experiment="sweep"):
    return load_runs(uri, experiment)


def _finished_once(runs) -> bool:
    finished = runs[runs.status == "FINISHED"]
    return not finished["tags.zssrgan.job_key"].duplicated().any()


def _artifacts(uri, run_id) -> set[str]:
    return {f.path for f in MlflowClient(uri).list_artifacts(run_id)}


def _kernel(uri, run_id) -> np.ndarray:
    """A run's kernel.npy artifact."""
    return np.load(MlflowClient(uri).download_artifacts(run_id, "kernel.npy"), allow_pickle=False)


def test_a_sweep_logs_every_job_with_metrics_artifacts_and_one_job_per_gpu(first_sweep):
    uri, _, code, out = first_sweep
    assert code == 0
    runs = _runs(uri)
    assert len(runs) == 2 + 2 * 2 and set(runs.status) == {"FINISHED"}  # 2 estimates + 2 images x 2 methods
    assert sorted(runs["tags.zssrgan.method"]) == ["bicubic"] * 2 + ["estimate"] * 2 + ["kernelgan-zssr"] * 2
    blind = runs["tags.zssrgan.method"].isin(["estimate", "kernelgan-zssr"])
    assert (runs.loc[blind, "tags.zssrgan.estimator"] == "kernelgan").all()
    assert runs.loc[~blind, "tags.zssrgan.estimator"].isna().all()
    assert "estimate_raw_sum" in runs.columns[runs.columns.str.startswith("metrics.")].str[8:].tolist()
    methods = runs[runs["tags.zssrgan.method"] != "estimate"]
    # a 20-iteration KernelGAN gives a poor kernel: only bicubic's PSNR has a known range here
    assert methods["metrics.psnr_y"].between(10, 60).all() and methods["metrics.ssim_y"].notna().all()
    assert methods[methods["tags.zssrgan.method"] == "bicubic"]["metrics.psnr_y"].between(20, 60).all()
    assert runs[runs["tags.zssrgan.method"] != "bicubic"]["metrics.kernel_error"].notna().all()
    assert runs["metrics.time_total"].notna().all() and runs["metrics.time_queue_wait"].notna().all()
    for _, run in runs.iterrows():
        expected = {"kernel.npy", "kernel.mat", "kernel.png"} if run["tags.zssrgan.method"] != "bicubic" else {"sr.png"}
        assert expected <= _artifacts(uri, run.run_id)
    # each job on the GPU Ray gave its actor (that both nodes hold one job each at once is
    # checked where the jobs wait: test_a_killed_worker_...)
    assert runs["tags.zssrgan.device"].str.contains(r"\(ray GPU 0[,)]").all()
    # the estimate reached its dependant through the object store, not computed again
    for image in ("baby", "bird"):
        pair = runs[(runs["tags.zssrgan.image"] == image) & runs["tags.zssrgan.method"].isin(["estimate", "kernelgan-zssr"])]
        kernels = [_kernel(uri, r) for r in pair.run_id]
        np.testing.assert_array_equal(*kernels)
        assert pair["metrics.time_kernelgan"].notna().sum() == 1  # trained once, in the estimate job
    assert "kernelgan-zssr" in out and f"zssrgan ui --tracking-uri {uri}, then open http://127.0.0.1:5000/#/" in out


def test_rerunning_creates_no_new_run_and_a_lost_dependant_reuses_a_recomputed_estimate(first_sweep, dataset):
    uri, argv, _, _ = first_sweep
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    runs = _runs(uri)
    assert len(runs) == 6 and _finished_once(runs)
    # one dependant's run goes missing (deleted): the rerun recomputes its estimate untracked, once
    dependant = runs[(runs["tags.zssrgan.method"] == "kernelgan-zssr") & (runs["tags.zssrgan.image"] == "baby")]
    old_kernel = _kernel(uri, dependant.run_id.iloc[0])
    MlflowClient(uri).delete_run(dependant.run_id.iloc[0])
    summary = run_sweep(_spec(dataset, uri))
    assert summary["finished"] == 1 and summary["already_finished"] == 5 and summary["failed"] == 0
    runs = _runs(uri)
    assert len(runs) == 6 and set(runs.status) == {"FINISHED"} and _finished_once(runs)
    redone = runs[(runs["tags.zssrgan.method"] == "kernelgan-zssr") & (runs["tags.zssrgan.image"] == "baby")]
    np.testing.assert_array_equal(_kernel(uri, redone.run_id.iloc[0]), old_kernel)  # deterministic under its seed on CPU


def test_a_corrupt_image_fails_alone_with_a_readable_reason(first_sweep, dataset, tmp_path):
    uri, _, _, _ = first_sweep
    data = tmp_path / "with_broken"
    shutil.copytree(dataset, data)
    (data / "lr_x2" / "im_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    shutil.copy(data / "gt" / "img_baby_gt.png", data / "gt" / "img_broken_gt.png")
    shutil.copy(data / "gt_k_x2" / "kernel_baby.mat", data / "gt_k_x2" / "kernel_broken.mat")
    summary = run_sweep(_spec(data, uri))  # the good images' jobs are already FINISHED in this store
    assert summary["already_finished"] == 6 and summary["failed"] == 3 and summary["finished"] == 0
    runs = _runs(uri)
    broken = runs[runs["tags.zssrgan.image"] == "broken"].set_index("tags.zssrgan.method")
    assert set(broken.status) == {"FAILED"} and len(broken) == 3
    assert "im_broken.png" in broken.loc["bicubic", "tags.zssrgan.error"]
    assert "im_broken.png" in broken.loc["estimate", "tags.zssrgan.error"]
    assert "kernelgan kernel estimate" in broken.loc["kernelgan-zssr", "tags.zssrgan.error"]
    assert "traceback.txt" in _artifacts(uri, broken.loc["bicubic", "run_id"])
    assert set(runs[runs["tags.zssrgan.image"] != "broken"].status) == {"FINISHED"}
    # the terminal names them too, grouped by their one cause
    [failure] = summary["failures"]
    assert "im_broken.png" in failure["cause"] and len(failure["jobs"]) == 3
    printed = format_summary(summary)
    assert "failed jobs, by cause:\n  ImageError: " in printed
    assert "estimate[kernelgan] on broken x2 seed 0" in printed and "bicubic on broken x2 seed 0" in printed
    assert "kernelgan-zssr[kernelgan] on broken x2 seed 0 (its estimate failed)" in printed


def test_finished_jobs_of_other_code_are_counted_and_run_again_with_rerun(first_sweep, dataset, monkeypatch):
    uri = first_sweep[0]
    client = MlflowClient(uri)
    # the bicubic runs, as another commit would have made them (artifacts beside the store, not in the cwd)
    older = client.create_experiment("older", artifact_location=artifact_location(uri))
    for run_id in _runs(uri).query("`tags.zssrgan.method` == 'bicubic'").run_id:
        source = client.get_run(run_id)
        copy = client.create_run(older, tags={k: v for k, v in source.data.tags.items() if k.startswith("zssrgan.")})
        client.log_param(copy.info.run_id, "git_commit", "0" * 40)
        client.log_param(copy.info.run_id, "version.zssrgan", source.data.params["version.zssrgan"])
        client.set_terminated(copy.info.run_id, "FINISHED")
    stream = io.StringIO()
    summary = run_sweep(_spec(dataset, uri, methods=["bicubic"], experiment="older"), stream=stream)
    assert summary["already_finished"] == 2 and summary["other_code"] == 2 and summary["finished"] == 0
    assert "2 of the finished jobs were made by other code" in stream.getvalue()
    assert "2 already finished (skipped; 2 of them by other code, --rerun runs them again)" in format_summary(summary)
    monkeypatch.chdir(dataset.parent)  # and the data given as a relative path
    argv = ["run", "--data", dataset.name, "--methods", "bicubic", "--preset", "quick", "--tracking-uri", uri,
            "--experiment", "older", "--rerun"] + [a for s in TINY for a in ("--set", s)]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(argv) == 0
    assert "2 finished" in out.getvalue()
    runs = _runs(uri, "older")
    ours = runs[(runs.status == "FINISHED") & (runs["params.git_commit"] != "0" * 40)]
    assert len(ours) == 2 and ours["params.lr_path"].map(lambda p: Path(p).is_absolute()).all()
    again = run_sweep(_spec(dataset, uri, methods=["bicubic"], experiment="older"))
    assert again["already_finished"] == 2 and again["other_code"] == 0 and again["finished"] == 0


def test_a_collapsed_estimate_fails_its_job_and_its_dependants_with_the_diagnostics(first_sweep, dataset):
    """Collapse forced deterministically: G's learning rate 0 keeps its near-zero initial kernel."""
    uri, _, _, _ = first_sweep
    strict = [s for s in TINY if not s.startswith("strict_estimates")] + ["kernelgan.lr_g=0"]
    summary = run_sweep(_spec(dataset, uri, methods=["bicubic", "kernelgan-zssr", "zssrgan-fixed"],
                              experiment="collapse", overrides=strict))
    assert summary["finished"] == 2 and summary["failed"] == 2 * 3  # bicubic runs; estimates and dependants fail
    runs = _runs(uri, "collapse")
    estimates = runs[runs["tags.zssrgan.method"] == "estimate"]
    assert set(estimates.status) == {"FAILED"} and (estimates["metrics.estimate_raw_sum"] < 0.25).all()
    assert (estimates["metrics.estimate_failed"] == 1).all()
    assert estimates["tags.zssrgan.error"].str.contains("KernelGAN collapsed").all()
    dependants = runs[runs["tags.zssrgan.method"].isin(["kernelgan-zssr", "zssrgan-fixed"])]
    assert set(dependants.status) == {"FAILED"} and dependants["tags.zssrgan.error"].str.contains("collapsed").all()


def _worker_names() -> set[str]:
    return {n["name"] if isinstance(n, dict) else n for n in ray.util.list_named_actors()}


class _Sweep(threading.Thread):
    """``run_sweep`` in a thread, so that the test acts while it runs (Ray adds nodes from the main
    thread only)."""

    def __init__(self, spec: SweepSpec, stream=None) -> None:
        super().__init__(daemon=True)
        self.spec, self.stream = spec, stream if stream is not None else io.StringIO()
        self.summary, self.error = None, None
        self.start()

    def run(self) -> None:
        try:
            self.summary = run_sweep(self.spec, stream=self.stream)
        except BaseException as exc:
            self.error = exc

    def result(self) -> dict:
        self.join(SWEEP_END_S)
        assert not self.is_alive(), f"the sweep did not end in {SWEEP_END_S} s: {self.stream.getvalue()!r}"
        if self.error is not None:
            raise self.error
        return self.summary


def test_a_killed_worker_is_replaced_and_its_job_retried_in_the_same_run(two_gpu_nodes, dataset, tmp_path, gate):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = _Sweep(_spec(dataset, uri, methods=[fault_gate.NAME], experiment="kill"))  # 2 images: 2 jobs
    first = gate.wait_started(2, stream=sweep.stream)
    # one job per GPU: the two jobs wait at once, on both nodes, each on the GPU Ray gave its actor
    assert {job["node"] for job in first} == {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert [job["gpus"] for job in first] == [["0"], ["0"]]
    os.kill(first[0]["pid"], signal.SIGKILL)  # the worker dies, as under the kernel's OOM killer
    again = gate.wait_started(3, stream=sweep.stream)[2]
    assert again["pid"] not in {job["pid"] for job in first}  # the job runs again, on a fresh worker
    gate.open()
    summary = sweep.result()
    assert summary["retries"] == 1 and summary["failed"] == 0 and summary["finished"] == 2
    runs = _runs(uri, "kill")
    assert len(runs) == 2 and set(runs.status) == {"FINISHED"}  # the retried job reused its run


class _CtrlCWhileRunning(io.StringIO):
    """A terminal on which the user presses Ctrl-C once both workers hold a job (waiting at the
    gate): the KeyboardInterrupt surfaces in the driver's loop, where a real one lands."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate, self.pressed = gate, False

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self.pressed and "running" in text and len(self.gate.started()) == 2:
            self.pressed = True
            raise KeyboardInterrupt
        return super().write(text)


def test_ctrl_c_marks_running_jobs_killed_and_the_next_run_finishes_the_rest(two_gpu_nodes, dataset, tmp_path,
                                                                             gate):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = _spec(dataset, uri, methods=[fault_gate.NAME], experiment="ctrlc", seeds=[0, 1], progress=True)
    terminal = _CtrlCWhileRunning(gate)
    summary = run_sweep(spec, stream=terminal)  # 4 jobs: 2 running when Ctrl-C comes, 2 queued
    assert terminal.pressed and summary["status"] == "KILLED" and summary["killed"] == 2
    assert "interrupted: running jobs marked KILLED" in terminal.getvalue()
    runs = _runs(uri, "ctrlc")
    assert sorted(runs.status) == ["KILLED", "KILLED"]  # queued jobs had no run yet
    gate.open()
    again = run_sweep(spec)
    assert again["status"] == "FINISHED" and again["finished"] == 4 and again["already_finished"] == 0
    runs = _runs(uri, "ctrlc")
    assert (runs.status == "FINISHED").sum() == 4 and _finished_once(runs) and "RUNNING" not in set(runs.status)


def test_workers_beyond_what_fits_wait_for_the_nodes_an_autoscaler_adds(two_gpu_nodes, dataset, tmp_path, gate):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = _spec(dataset, uri, methods=[fault_gate.NAME], experiment="grow", seeds=[0, 1, 2], workers=3)
    assert worker_shape(spec, 6, can_grow=False)[0] == 2  # a Ray started by the command cannot grow
    with pytest.raises(SweepError, match="its largest node has 1 CPUs"):  # 2 CPUs in all, but not on one node
        worker_shape(dataclasses.replace(spec, cpus_per_job=2), 6, can_grow=False)
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        expand(dataclasses.replace(spec, workers=0))  # before Ray or MLflow is touched
    sweep = _Sweep(spec)
    gate.wait_started(2, stream=sweep.stream)  # the two workers that fit hold a job each
    assert "2 of the 3 workers fit the cluster now" in sweep.stream.getvalue()
    node = two_gpu_nodes.add_node(num_cpus=1, num_gpus=1)  # what an autoscaler does when asked
    try:
        third = gate.wait_started(3, stream=sweep.stream)[2]
    finally:
        gate.open()
        sweep.join(SWEEP_END_S)
        two_gpu_nodes.remove_node(node)
    assert third["node"] == node.node_id  # the worker that waited started on the new node and took a job
    summary = sweep.result()
    assert summary["status"] == "FINISHED" and summary["finished"] == 6
    assert _runs(uri, "grow")["tags.zssrgan.host"].nunique() == 3


@pytest.mark.timeout(180)  # a hang guard: MLflow's own retries would take minutes
def test_an_unreachable_tracking_server_is_reported_in_seconds_before_any_training(two_gpu_nodes, dataset, capfd):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends
    workers_before = _worker_names()
    code = main(["run", "--data", str(dataset), "--methods", "bicubic", "--tracking-uri", f"http://127.0.0.1:{port}"])
    assert code == 2
    assert f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}" in capfd.readouterr().err
    unreachable = f"http://127.0.0.1:{port}"
    with pytest.raises(TrackingUnavailable, match=f"cannot reach the MLflow tracking server at {unreachable}"):
        run_sweep(_spec(dataset, unreachable))
    assert _worker_names() <= workers_before  # no worker was started


def test_a_tracking_server_lost_mid_sweep_stops_it_in_words_and_the_rerun_does_only_the_rest(
        two_gpu_nodes, dataset, tmp_path, monkeypatch, gate):
    # a short MLflow retry schedule keeps the test short; the driver's own defaults are tested apart
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    port = free_port()
    spec = _spec(dataset, f"http://127.0.0.1:{port}", methods=[fault_gate.NAME], experiment="outage",
                 seeds=[0, 1, 2])  # 6 jobs
    server = contextlib.ExitStack()
    url = server.enter_context(running_mlflow_server(tmp_path, port))
    try:
        sweep = _Sweep(spec)
        gate.release(gate.wait_started(2, stream=sweep.stream)[0]["job"])  # one job ends, the other waits
        gate.wait_started(3, stream=sweep.stream)  # its worker took the next job: the first is recorded
        server.close()  # the tracking server stops while two jobs run
        gate.open()  # they end, and cannot be recorded
        with pytest.raises(TrackingLost) as lost:
            sweep.result()
    finally:
        server.close()
    message = str(lost.value)
    assert f"cannot reach the MLflow tracking server at {url}" in message
    assert "The jobs recorded FINISHED are kept" in message and "Run the same command" in message
    # the server's own store, read directly: it is still there once the server is gone
    recorded = _runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "outage")
    kept = set(recorded[recorded.status == "FINISHED"].run_id)
    assert len(kept) == 1

    with running_mlflow_server(tmp_path, port):  # the server is back, with the same store
        summary = run_sweep(spec)
        runs = _runs(url, "outage")
    assert summary["status"] == "FINISHED" and summary["already_finished"] == 1
    assert summary["finished"] == 5 and summary["failed"] == 0
    assert (runs.status == "FINISHED").sum() == 6 and _finished_once(runs) and "RUNNING" not in set(runs.status)
    assert kept <= set(runs[runs.status == "FINISHED"].run_id)  # recorded results were neither lost nor redone


def test_the_same_sweep_against_a_real_mlflow_server(two_gpu_nodes, dataset, mlflow_server):
    summary = run_sweep(_spec(dataset, mlflow_server, experiment="server"))
    assert summary["finished"] == 6 and summary["failed"] == 0
    runs = load_runs(mlflow_server, "server")
    assert len(runs) == 6 and set(runs.status) == {"FINISHED"}
    bicubic = runs[runs["tags.zssrgan.method"] == "bicubic"].run_id.iloc[0]
    assert "sr.png" in _artifacts(mlflow_server, bicubic)


@pytest.mark.cuda
def test_jobs_run_on_the_gpu_that_ray_gives_their_worker(two_gpu_nodes, dataset, tmp_path):
    """Where a GPU is present, ``device=auto`` jobs run on it (both nodes' advertised GPU 0 is this
    machine's first GPU)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    auto = [setting for setting in TINY if setting != "device=cpu"]
    summary = run_sweep(_spec(dataset, uri, experiment="gpu", overrides=auto))
    assert summary["finished"] == 6 and summary["failed"] == 0
    devices = _runs(uri, "gpu")["tags.zssrgan.device"]
    assert (devices == f"{torch.cuda.get_device_name(0)} (ray GPU 0)").all()


def test_a_sweep_that_cannot_start_ends_its_parent_run_failed(two_gpu_nodes, dataset, sqlite_uri):
    with pytest.raises(SweepError, match="no job fits the cluster"):
        run_sweep(_spec(dataset, sqlite_uri, experiment="unfit", cpus_per_job=64))
    client = MlflowClient(tracking_uri=sqlite_uri)
    experiment = client.get_experiment_by_name("unfit")
    parents = client.search_runs([experiment.experiment_id], "tags.`zssrgan.kind` = 'sweep'")
    assert [parent.info.status for parent in parents] == ["FAILED"]


def test_dry_run_prints_the_job_table_without_tracking(dataset, capsys):
    assert main(["run", "--data", str(dataset), "--methods", "kernelgan-zssr,zssrgan-fixed", "--dry-run",
                 "--grid", "zssrgan.disc_ratio=0.2,0.8", "--tracking-uri", "http://127.0.0.1:9"]) == 0
    resolved, table = capsys.readouterr().out.split("\nkey ", 1)
    assert "zssrgan.disc_ratio:\n  - '0.2'\n  - '0.8'" in resolved
    # 2 estimates + 2 images x (kernelgan-zssr once, for both ratios: it reads no zssrgan.* + zssrgan-fixed twice)
    assert "8 jobs" in table
    lines = [line.split() for line in table.splitlines()[1:-1]]
    assert sorted(line[-1] for line in lines if line[1] == "zssrgan-fixed") == ["zssrgan.disc_ratio=0.2"] * 2 + \
        ["zssrgan.disc_ratio=0.8"] * 2
    assert [len(line) for line in lines if line[1] == "kernelgan-zssr"] == [7, 7]  # no grid column: it reads none
