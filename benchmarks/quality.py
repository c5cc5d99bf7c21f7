"""The full comparison: every method on a benchmark dataset through the sweep runner (Ray + MLflow),
ending in the report. Prints the per-method table and writes benchmarks/out/quality.json.

    .venv/bin/python benchmarks/quality.py --make-from benchmarks/data/classic --protocol div2krk \
        --scales 2 --preset paper --images 15
    .venv/bin/python benchmarks/quality.py --data /path/to/DIV2KRK --scales 2,4 --preset paper

    .venv/bin/python benchmarks/quality.py --methods zssr,kernelgan-zssr --grid estimator=kernelgan,cross-scale

``--make-from`` degrades a folder of HR images into the DIV2KRK layout first (``--protocol``);
``--data`` takes a finished DIV2KRK-layout folder (or a folder of LR photos). ``--names a,b``
keeps the images of those names, ``--images N`` the first N; ``--size PX`` centre-crops the HR
images first (quick checks only).
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from cluster.driver import run_sweep  # noqa: E402
from cluster.jobs import SweepSpec  # noqa: E402
from zssrgan.cli.run_cmd import parse_grid  # noqa: E402
from zssrgan.datasets import MANIFEST, PROTOCOLS, discover, make_dataset  # noqa: E402
from zssrgan.io import load_image, save_image  # noqa: E402
from zssrgan.methods import METHODS  # noqa: E402
from zssrgan.report import own_folder  # noqa: E402

from methods_quick import centre_crop  # noqa: E402  (a sibling script: benchmarks/ is on sys.path)

OUT = HERE / "out"
OWN = ("src", "data", "mlflow.db", "mlartifacts", "report")  # what a benchmark writes in its folder


def hardware() -> str:
    """The GPU's name when CUDA is present, else the CPU model and core count."""
    from zssrgan.device import device_name, resolve_device

    return device_name(resolve_device("auto"))


def add_dataset_arguments(parser: argparse.ArgumentParser, images: int | None, folder: str) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", help="a DIV2KRK-layout folder or a folder of LR photos")
    source.add_argument("--make-from", default=str(HERE / "data" / "classic"),
                        help="folder of HR images to degrade first (default benchmarks/data/classic)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="div2krk", help="degradation of --make-from")
    parser.add_argument("--scales", default="2", help="comma-separated scales (default 2)")
    parser.add_argument("--seeds", default="0", help="comma-separated random seeds (default 0)")
    parser.add_argument("--preset", default="quick", help="config preset (default quick; paper: published)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--methods", default=",".join(METHODS), help="methods (default: all)")
    parser.add_argument("--estimator", default=None, help="kernel estimator of the blind methods (default kernelgan)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="ablation grid, as `zssrgan run --grid` (e.g. estimator=kernelgan,cross-scale)")
    parser.add_argument("--images", type=int, default=images, metavar="N", help="use the first N images")
    parser.add_argument("--names", default=None, help="comma-separated image names to use (default: all)")
    parser.add_argument("--size", type=int, default=None, metavar="PX",
                        help="centre-crop the HR images of --make-from to PX (quick checks)")
    parser.add_argument("--workers", type=int, default=None, help="parallel jobs (default: all cores / GPUs)")
    parser.add_argument("--out", default=str(OUT / folder), help=f"work folder (default benchmarks/out/{folder})")


def _centre_crop(path: Path, size: int | None, dest: Path) -> None:
    image = load_image(path)
    save_image(dest / f"{path.stem}.png", centre_crop(image, size) if size else image)


def select(items: list, args: argparse.Namespace) -> list:
    """The images named by ``--names`` (all by default), then the first ``--images`` of them."""
    if args.names:
        wanted = args.names.split(",")
        missing = sorted(set(wanted) - {item.name for item in items})
        if missing:
            raise SystemExit(f"no image named {', '.join(missing)}; there are: "
                             f"{', '.join(item.name for item in items)}")
        items = [item for item in items if item.name in wanted]
    return items[:args.images]


def prepare_dataset(args: argparse.Namespace, work: Path, scales: tuple[int, ...]) -> Path:
    """The benchmark's data folder: a subset copy of ``--data``, or ``--make-from`` degraded."""
    if args.data:
        data = Path(args.data)
        if (args.images is None and not args.names) or data.is_file():
            return data
        for scale in scales:  # the first N images with their ground truth and kernels, same layout
            for item in select(discover(data, scale), args):
                for path in (item.lr_path, item.gt_path, *item.kernel_paths.values()):
                    if path is not None:
                        target = work / "data" / path.relative_to(data)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, target)
        if (data / MANIFEST).is_file():  # the protocol and kernel widths (it may describe more images)
            shutil.copy2(data / MANIFEST, work / "data" / MANIFEST)
        return work / "data"
    sources = select(discover(args.make_from, min(scales)), args)
    (work / "src").mkdir()
    for item in sources:
        _centre_crop(item.lr_path, args.size, work / "src")
    return make_dataset(work / "src", work / "data", protocol=args.protocol, scales=scales, seed=0)


def run_benchmark(args: argparse.Namespace, experiment: str) -> tuple[dict, str, Path]:
    """Prepare the data and run the sweep in a fresh local store; (summary, tracking URI, work folder)."""
    scales = tuple(int(s) for s in args.scales.split(","))
    work = own_folder(Path(args.out).resolve(), OWN, replace=OWN)  # a fresh store: every job runs
    data = prepare_dataset(args, work, scales)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    overrides = args.overrides + ([f"estimator={args.estimator}"] if args.estimator else [])
    spec = SweepSpec(data=[str(data)], methods=args.methods.split(","), scales=list(scales),
                     seeds=[int(s) for s in args.seeds.split(",")], preset=args.preset,
                     overrides=overrides, grid=parse_grid(args.grid), experiment=experiment, tracking_uri=uri,
                     workers=args.workers)
    return run_sweep(spec), uri, work


def write_json(name: str, payload: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser, images=None, folder="quality")
    args = parser.parse_args()
    from zssrgan.cli.report_cmd import write_report

    device = hardware()
    summary, uri, work = run_benchmark(args, "quality")
    index = write_report(uri, "quality", work / "report", sweep=summary["sweep_id"])
    table = pd.read_csv(index.parent / "tables" / "methods.csv")
    print(f"\n{device}\n" + (index.parent / "tables" / "methods.md").read_text())
    path = write_json("quality", {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "device": device,
        "preset": args.preset, "overrides": args.overrides, "estimator": args.estimator, "grid": args.grid,
        "scales": args.scales, "seeds": args.seeds,
        "dataset": args.data or f"{args.make_from} ({args.protocol})", "images": args.images, "size": args.size,
        "sweep": {k: summary[k] for k in ("sweep_id", "jobs", "finished", "failed", "seconds")},
        "methods": table.to_dict(orient="records"),
        "report": str(index),
    })
    print(f"report: {index}\nwrote {path}")


if __name__ == "__main__":
    main()
