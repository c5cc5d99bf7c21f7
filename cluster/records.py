"""What every job run records (the MLflow schema of ARCHITECTURE.md): tags, params, metrics, curves."""
from __future__ import annotations

import importlib.metadata
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from mlflow.entities import Metric
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from zssrgan.config import flatten

VERSIONED_PACKAGES = ("zssrgan", "torch", "numpy", "ray", "mlflow")

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


def made_by_this_code(params: dict[str, str]) -> bool:
    """Whether a run's params name this checkout's git commit and zssrgan version."""
    return (params.get("git_commit") == git_commit()
            and params.get("version.zssrgan") == package_versions()["zssrgan"])


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
        "zssrgan.protocol": job.item.protocol or "",
        "zssrgan.kernel_width": "" if job.item.kernel_width is None else f"{job.item.kernel_width:g}",
        **({"zssrgan.estimator": job.estimator} if job.estimator else {}),
    }


def run_name(job) -> str:
    """``method[estimator]-image-x2-s0``: what the MLflow UI lists, the estimator where one is used."""
    estimator = f"[{job.estimator}]" if job.estimator else ""
    return f"{job.method}{estimator}-{job.item.name}-x{job.scale}-s{job.seed}"


def job_params(job) -> dict[str, str]:
    params = {
        "method": job.method,
        "scale": job.scale,
        "seed": job.seed,
        "image": job.item.name,
        "dataset": job.dataset,
        "lr_path": job.item.lr_path,
        "gt_path": job.item.gt_path,
        "protocol": job.item.protocol,
        "kernel_width": job.item.kernel_width,
        "noise": job.item.noise,
        **{f"cfg.{k}": v for k, v in flatten(job.cfg).items()},
        **{f"sha256.{k}": v for k, v in job.files.items()},  # the content of each file the config names
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


