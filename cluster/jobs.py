"""Sweeps and jobs: what to run, by path, under a deterministic key.

A sweep (:class:`SweepSpec`) expands to images x methods x scales x seeds x config-grid points.
Jobs hold paths and shared config objects, not pixels, so a queue of tens of thousands of jobs
stays small. A kernel estimate runs as a job of its own, once per (image, scale, seed, estimator
and its config), and the methods that reuse it name it in ``estimate_key``.

A job's key hashes the image's content and the configuration the job reads: the sections its
method reads (``Method.reads``) and, for the blind methods, the estimator's name and sections
(``Estimator.reads``), with the content of any file a key it reads names (``Job.files``). A grid
over a key a job does not read therefore leaves that job's key alone: it runs once and belongs
to every point of the grid.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from zssrgan.config import (Config, ConfigError, apply_overrides, file_keys, flatten, parse_assignment,
                            preset, set_value)
from zssrgan.datasets import ImageItem, discover
from zssrgan.errors import InputError
from zssrgan.estimators import get_estimator
from zssrgan.methods import DISCRIMINATOR, Method, applicable, get_method, with_plugin_settings

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # the embedded default: a local file, artifacts beside it

ESTIMATE = "estimate"  # the pseudo-method of the estimate jobs: `--methods estimate` records estimates alone
COMMON_KEYS = ("seed", "device", "real")  # read by every job


@dataclass
class SweepSpec:
    """Everything a sweep needs; ``zssrgan run`` builds one from its options.

    ``data``: image folders, DIV2KRK-layout folders or single images. ``grid`` maps a dotted config
    key to the values of the ablation sweep (``{"zssrgan.disc_ratio": [0.1, 0.5]}``); ``overrides``
    are ``key=value`` settings applied to every job (after ``preset``, before the grid).
    ``address``: None starts a local Ray (or reuses the one this process already joined), ``auto``
    or ``ray://host:port`` joins a cluster. ``gpus_per_job`` may be a fraction (0.25 packs four jobs
    on a GPU); None means 1 where the cluster has GPUs when the sweep starts, else 0. ``workers``:
    the number of actors; by default as many as the cluster's resources allow now. On a cluster the
    sweep joins, a larger number is honoured (the other actors wait for an autoscaling cluster to
    add nodes); on a Ray the sweep starts itself, it is capped to what fits. ``progress``: print a
    progress line on stderr. ``rerun``: run again the jobs whose FINISHED run was made by other
    code (another git commit or zssrgan version); by default they are skipped, and counted.
    """

    data: list[str]
    methods: list[str]
    scales: list[int] = field(default_factory=lambda: [2])
    seeds: list[int] = field(default_factory=lambda: [0])
    preset: str = "paper"
    overrides: list[str] = field(default_factory=list)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    real: bool = False
    experiment: str = "zssrgan"
    tracking_uri: str = DEFAULT_TRACKING_URI
    address: Optional[str] = None
    gpus_per_job: Optional[float] = None
    cpus_per_job: float = 1.0
    max_retries: int = 2
    workers: Optional[int] = None
    progress: bool = True
    rerun: bool = False


def sweep_yaml(spec: SweepSpec) -> str:
    """The sweep as a sweep file (``zssrgan run --config``): every setting, the data as absolute
    paths, ``set`` as a mapping (the last value of a key given twice, the one that applies).
    Attached to the sweep's parent run, so a sweep can be read back and run again."""
    files = file_keys(sections(spec))
    document = {}
    for f in fields(spec):
        if f.name == "overrides":
            document["set"] = dict(absolute_files(map(parse_assignment, spec.overrides), files))
        elif f.name != "progress":
            document[f.name] = getattr(spec, f.name)
    document["data"] = [str(Path(p).expanduser().resolve()) for p in spec.data]
    document["grid"] = dict(absolute_files(spec.grid.items(), files))
    return yaml.safe_dump(document, sort_keys=False)


def absolute_files(pairs: Iterable[tuple[str, Any]], keys: list[str],
                   folder: Optional[Path] = None) -> list[tuple[str, Any]]:
    """(key, value) pairs (a grid's value: a list of values) with the non-empty values of the
    file-valued ``keys`` (``config.file_keys``) as absolute paths, relative to ``folder`` (default:
    the current folder)."""
    def absolute(value: Any) -> Any:
        if not isinstance(value, str) or not value:
            return value
        return str(((folder or Path.cwd()) / Path(value).expanduser()).resolve())

    return [(key, value if key not in keys else [absolute(v) for v in value] if isinstance(value, list)
             else absolute(value)) for key, value in pairs]


def _absolute_files(cfg: Config, keys: list[str]) -> Config:
    """``cfg`` with its file-valued ``keys`` absolute: workers may run in another folder."""
    flat = flatten(cfg)
    return apply_overrides(cfg, dict(absolute_files([(key, flat[key]) for key in keys], keys)))


def _file_hashes(keys: list[str], flat_cfg: dict[str, Any], hashes: dict[Path, str]) -> dict[str, str]:
    """The sha256 of each file a flattened config names under its file-valued ``keys`` (absolute
    paths): a job is keyed by the file's content, as by its image's. A file that is not there is
    refused before anything runs."""
    out = {}
    for key in keys:
        if flat_cfg[key]:
            path = Path(flat_cfg[key])
            if not path.is_file():
                raise InputError(f"{key}: no file at {path} (a relative path is taken from the current folder, "
                                 "or from a sweep file's folder)")
            if path not in hashes:
                hashes[path] = file_hash(path)
            out[key] = hashes[path]
    return out


def check_files(job) -> None:
    """Refuse a job whose files (``Job.files``) differ on this node from those the sweep hashed:
    on a cluster the driver and the workers each read the path."""
    flat = flatten(job.cfg) if job.files else {}
    for key, expected in job.files.items():
        path = Path(flat[key])
        found = file_hash(path) if path.is_file() else None
        if found != expected:
            state = f"sha256 {found[:12]}..." if found else "missing"
            raise InputError(f"{key}: the file at {path} on this node ({state}) is not the one the sweep was "
                             f"keyed by (sha256 {expected[:12]}...): give every node the same file")


@dataclass(slots=True, eq=False)
class Job:
    """One unit of work: a method (or a KernelGAN estimate) on one image at one scale and seed.

    ``cfg`` and ``grid`` objects are shared by every job of the same grid point and seed.
    """

    key: str
    kind: str  # "estimate" | "method"
    method: str  # method name, or "estimate"
    item: ImageItem
    scale: int
    seed: int
    cfg: Config
    grid: dict[str, Any]
    dataset: str
    sweep_id: str = ""
    estimate_key: Optional[str] = None
    estimator: str = ""  # the kernel estimator behind the job's kernel ("" for methods that use none)
    discriminator: bool = False  # estimate jobs: a method that reuses it needs a discriminator
    files: dict[str, str] = field(default_factory=dict)  # file-valued config keys it reads -> the file's sha256


@dataclass
class Sweep:
    """The expanded sweep: jobs in dispatch order (estimates first) and what was left out, and why."""

    sweep_id: str
    jobs: list[Job]
    skipped: list[str]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def config_digest(flat_cfg: dict[str, Any]) -> str:
    """Hash of a flattened config (computed once per grid point, not once per job)."""
    return hashlib.sha256(json.dumps(flat_cfg, sort_keys=True, default=str).encode()).hexdigest()


def job_key(image_hash: str, method: str, scale: int, seed: int, cfg_digest: str) -> str:
    """Content hash of the image plus everything that determines the job's result."""
    payload = f"{image_hash}|{method}|x{scale}|seed={seed}|{cfg_digest}"
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def read_settings(flat_cfg: dict[str, Any], method: Optional[Method]) -> dict[str, Any]:
    """The part of a flattened config a job reads: the common keys, its method's sections (none for
    an estimate job, ``method`` None) and, when it uses a kernel estimator, the estimator's name
    and sections (``Method.reads``, ``Estimator.reads``)."""
    keys, sections = set(COMMON_KEYS), method.reads if method is not None else ()
    if method is None or method.estimate:
        keys.update(("estimator", "strict_estimates"))
        sections += get_estimator(flat_cfg["estimator"]).reads
    return {k: v for k, v in flat_cfg.items() if k in keys or k.startswith(sections)}


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid's values; one empty point when there is no grid."""
    keys = sorted(grid)
    for key in keys:
        if not grid[key]:
            raise ConfigError(f"--grid {key} has no values")
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def sections(spec: SweepSpec) -> Config:
    """The preset with the settings sections of the sweep's plugins: what its overrides and grid set."""
    return with_plugin_settings(preset(spec.preset), [m for m in spec.methods if m != ESTIMATE],
                                spec.grid.get("estimator", []), spec.overrides)


def base_config(spec: SweepSpec) -> Config:
    """The preset with the sweep's plugins' settings sections and its overrides (not the grid)."""
    cfg = apply_overrides(sections(spec), spec.overrides)
    cfg = _absolute_files(cfg, file_keys(cfg))
    return set_value(cfg, "real", True) if spec.real else cfg


def _configs(spec: SweepSpec) -> list[tuple[dict[str, Any], Config, dict[str, str]]]:
    """(ablation point with parsed values, config, the sha256 of each file the config names) per
    grid point; bad keys/values raise ConfigError, a file that is not there InputError."""
    base, hashes = base_config(spec), {}
    keys = file_keys(base)  # a grid sets values, not sections: the same keys at every point
    out = []
    for point in grid_points(spec.grid):
        cfg = _absolute_files(apply_overrides(base, point), keys)
        flat = flatten(cfg)
        out.append(({k: flat[k] for k in point}, cfg, _file_hashes(keys, flat, hashes)))
    return out


def _dataset_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def _job_settings(flat_cfg: dict[str, Any], point: dict[str, Any], files: dict[str, str], method: Optional[Method],
                  discriminator: bool = False) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(digest of what the job reads, a file by its content rather than its path; the part of the
    ablation point it reads; the hashes of the files it reads). An estimate job that must train
    KernelGAN's discriminator for an estimator without one reads "kernelgan." too."""
    settings = read_settings(flat_cfg, method)
    if discriminator and get_estimator(flat_cfg["estimator"]).trainer is None:
        settings.update({k: v for k, v in flat_cfg.items() if k.startswith("kernelgan.")})
    read = {k: h for k, h in files.items() if k in settings}
    digest = config_digest({**settings, **{k: f"sha256:{h}" for k, h in read.items()}})
    return digest, {k: v for k, v in point.items() if k in settings}, read


def expand(spec: SweepSpec) -> Sweep:
    """Every job of the sweep; bad methods, estimators, scales, config keys or data raise a clear error."""
    if not spec.data or not spec.methods:
        raise InputError("a sweep needs at least one --data path and one method")
    if spec.workers is not None and spec.workers < 1:
        raise InputError(f"--workers must be at least 1, got {spec.workers}")
    requested = list(dict.fromkeys(spec.methods))
    methods = {name: get_method(name) for name in requested if name != ESTIMATE}
    scales = list(dict.fromkeys(int(s) for s in spec.scales))
    if any(s not in (2, 4) for s in scales):
        raise InputError(f"scales must be 2 or 4, got {scales}")
    configs = _configs(spec)
    for _, cfg, _ in configs:
        get_estimator(cfg.estimator)  # an unknown name fails here, before anything runs
    seeds = list(dict.fromkeys(int(s) for s in spec.seeds))
    seeded = {(i, seed): set_value(cfg, "seed", seed) for i, (_, cfg, _) in enumerate(configs) for seed in seeds}
    discriminator = any(m.estimate == DISCRIMINATOR for m in methods.values())
    plans = {}  # (grid point, seed) -> per method (and ESTIMATE): (digest, point it reads, files), or a reason
    for (i, seed), cfg in seeded.items():
        flat, (point, _, files) = flatten(cfg), configs[i]
        plan = {name: applicable(name, cfg.estimator) or _job_settings(flat, point, files, method)
                for name, method in methods.items()}
        if ESTIMATE in requested or any(m.shares_estimate and not isinstance(plan[n], str)
                                        for n, m in methods.items()):
            plan[ESTIMATE] = _job_settings(flat, point, files, None, discriminator)
        plans[i, seed] = plan

    estimates: dict[str, Job] = {}
    jobs: list[Job] = []
    skipped: list[str] = []
    hashes: dict[Path, str] = {}
    for path in (Path(p).expanduser().resolve() for p in spec.data):  # workers and reports may run elsewhere
        for scale in scales:
            for item in discover(path, scale):
                if item.lr_path not in hashes:
                    hashes[item.lr_path] = file_hash(item.lr_path)
                image_hash = hashes[item.lr_path]
                for (i, seed), cfg in seeded.items():
                    plan = plans[i, seed]
                    estimate_key = None
                    if ESTIMATE in plan:
                        digest, point, files = plan[ESTIMATE]
                        estimate_key = job_key(image_hash, ESTIMATE, scale, seed, digest)
                        estimates.setdefault(estimate_key, Job(
                            estimate_key, "estimate", ESTIMATE, item, scale, seed, cfg, point, _dataset_name(path),
                            estimator=cfg.estimator, discriminator=discriminator, files=files))
                    for name, method in methods.items():
                        gap = item.true_kernel_gap(scale) if method.needs_kernel else None
                        if gap:
                            skipped.append(f"{name} on {item.name} x{scale}: {gap}")
                            continue
                        if isinstance(plan[name], str):
                            skipped.append(f"{name} on {item.name} x{scale} with estimator {cfg.estimator}: "
                                           f"not applicable ({plan[name]})")
                            continue
                        digest, point, files = plan[name]
                        jobs.append(Job(job_key(image_hash, name, scale, seed, digest), "method", name, item,
                                        scale, seed, cfg, point, _dataset_name(path),
                                        estimate_key=estimate_key if method.shares_estimate else None,
                                        estimator=cfg.estimator if method.estimate else "", files=files))
    ordered = _unique(list(estimates.values()) + jobs, skipped)
    sweep_id = hashlib.sha256("\n".join(sorted(j.key for j in ordered)).encode()).hexdigest()[:16]
    for job in ordered:
        job.sweep_id = sweep_id
    return Sweep(sweep_id, ordered, skipped)


def _unique(jobs: list[Job], skipped: list[str]) -> list[Job]:
    """One job per key: grid points that differ only in settings a job does not read share it, and
    the same image given twice (within one grid point: the same config object) runs once, with a note."""
    seen: dict[str, Job] = {}
    for job in jobs:
        first = seen.setdefault(job.key, job)
        if first is not job and first.cfg is job.cfg:
            skipped.append(f"{job.method} on {job.item.name} x{job.scale} seed {job.seed}: "
                           f"same inputs as another job ({job.item.lr_path})")
    return list(seen.values())
