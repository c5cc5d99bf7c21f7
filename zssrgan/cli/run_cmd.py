"""``zssrgan run``: benchmark methods on images at scale with Ray, recording every job in MLflow."""
from __future__ import annotations

import argparse
import sys

from cluster.jobs import DEFAULT_TRACKING_URI

from ..config import ConfigError, parse_assignment
from ..errors import InputError
from . import sweep_file
from .common import add_config_arguments, comma_separated, sweep_overrides, warn_if_slow

help = "run a benchmark sweep (images x methods x scales x seeds x config grid) on Ray, tracked in MLflow"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Jobs whose key (image content, method, scale, seed, config) already has a FINISHED run "
                     "are skipped, so running the same command again resumes a sweep (--rerun also runs again "
                     "those finished by another git commit or zssrgan version). Exit status: 0 when every job "
                     "finished, 1 when some failed, 2 for bad input, an unreachable tracking store or a lost "
                     "Ray node (the same command resumes), 3 for an unexpected error, 130 after Ctrl-C.")
    parser.add_argument("--config", metavar="SWEEP.yaml",
                        help="read the options from a sweep file (keys named like the flags, with underscores; "
                             "relative data paths are relative to the file's folder); flags given here override "
                             "it, --set and --grid key by key")
    parser.add_argument("--data", action="append", metavar="PATH",
                        help="folder of LR images, DIV2KRK-layout folder or one image (repeatable)")
    parser.add_argument("--methods", type=comma_separated(str), metavar="M1,M2",
                        help="methods to compare (see `zssrgan methods`; `estimate` alone records the kernel "
                             "estimates)")
    parser.add_argument("--scales", type=comma_separated(int), metavar="2,4", help="scale factors (default 2)")
    parser.add_argument("--seeds", type=comma_separated(int), default=None, metavar="0,1",
                        help="random seeds (default 0)")
    add_config_arguments(parser)
    parser.set_defaults(preset=None, real=None)  # None: not given, so a sweep file's value stands
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="ablation sweep over a config key, e.g. --grid zssrgan.disc_ratio=0.1,0.3,0.5 "
                             "(repeatable: the cartesian product is run)")
    parser.add_argument("--experiment", help="MLflow experiment (default zssrgan)")
    parser.add_argument("--tracking-uri",
                        help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI}, artifacts beside it)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join: auto or ray://host:port (default: start a local Ray)")
    parser.add_argument("--gpus-per-job", type=float, default=None, metavar="F",
                        help="GPUs per job (default: 1 where the cluster has GPUs when the sweep starts, else 0; "
                             "0.25 packs four jobs on a GPU)")
    parser.add_argument("--cpus-per-job", type=float, metavar="N",
                        help="CPUs per job, also its torch/OpenMP thread count (default 1)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="N workers (default: as many as the cluster's resources allow now); on a joined "
                             "cluster those that do not fit yet wait for the autoscaler to add nodes, on a Ray "
                             "started by this command N is capped to what fits")
    parser.add_argument("--max-retries", type=int, metavar="N",
                        help="retries of a job whose worker died (default 2)")
    parser.add_argument("--rerun", action="store_true", default=None,
                        help="run again the jobs whose FINISHED run was made by other code (another git commit or "
                             "zssrgan version); by default they are skipped and counted")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved sweep and the job table, and exit")


def parse_grid(assignments: list[str]) -> dict[str, list[str]]:
    """``--grid KEY=V1,V2`` options as ``{key: [values]}``."""
    grid = {}
    for text in assignments:
        key, values = parse_assignment(text)
        if key in grid:
            raise ConfigError(f"--grid {key} given twice; list all its values once: {key}=v1,v2")
        grid[key] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def spec_from_args(args: argparse.Namespace):
    """The sweep the options describe: the sweep file's settings (``--config``), overridden by the
    flags given (None or empty: not given; ``--set`` and ``--grid`` apply after the file's), the
    defaults of :class:`~cluster.jobs.SweepSpec` for the rest."""
    from cluster.jobs import sections

    if args.seed is not None and args.seeds is not None:
        raise ConfigError("give either --seed or --seeds, not both")
    if not args.config:
        return _spec(args, {})
    from_file = sweep_file.load(args.config)
    # the file's keys are known once the plugins that the file and the flags name are
    return _spec(args, sweep_file.resolve(args.config, from_file, sections(_spec(args, from_file))))


def _spec(args: argparse.Namespace, from_file: dict):
    from cluster.jobs import SweepSpec

    settings = dict(from_file)
    overrides = settings.pop("overrides", []) + sweep_overrides(args)
    grid = {**settings.pop("grid", {}), **parse_grid(args.grid)}
    given = {"data": args.data, "methods": args.methods, "scales": args.scales,
             "seeds": args.seeds or (None if args.seed is None else [args.seed]), "preset": args.preset,
             "real": args.real, "experiment": args.experiment, "tracking_uri": args.tracking_uri,
             "address": args.address, "gpus_per_job": args.gpus_per_job, "cpus_per_job": args.cpus_per_job,
             "max_retries": args.max_retries, "workers": args.workers, "rerun": args.rerun}
    settings.update({k: v for k, v in given.items() if v is not None})
    for name, flag in (("data", "--data PATH"), ("methods", "--methods M1,M2")):
        if not settings.get(name):
            raise InputError(f"no {name} to run: give {flag} or `{name}:` in a sweep file (--config)")
    return SweepSpec(**settings, overrides=overrides, grid=grid)


def run(args: argparse.Namespace) -> int:
    """Exit code 0 when every job finished, 1 when some failed, 130 after Ctrl-C (errors: see cli/__init__.py)."""
    from cluster.driver import format_jobs, format_summary, run_sweep
    from cluster.jobs import base_config, expand, sweep_yaml

    spec = spec_from_args(args)
    device = "cpu" if spec.gpus_per_job == 0 else base_config(spec).device
    warn_if_slow(spec.preset, spec.methods, device, local=spec.address is None)
    if args.dry_run:
        sweep = expand(spec)
        print(f"# the resolved sweep (a sweep file)\n{sweep_yaml(spec)}\n{format_jobs(sweep)}")
        return 0
    summary = run_sweep(spec, stream=sys.stderr)
    print(format_summary(summary))
    if summary["status"] == "KILLED":
        return 130
    return 1 if summary["failed"] else 0
