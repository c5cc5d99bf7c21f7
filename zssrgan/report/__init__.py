"""The comparison report: MLflow runs as a pandas DataFrame in; tables, figures and ``index.html`` out.

The report never talks to MLflow itself: the caller (``zssrgan report``) hands it the runs and two
small functions that fetch a run's artifact and a metric's history, so this package stays testable
and free of the tracking layer.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import pandas as pd

from ..errors import InputError
from .ablation import ablation_rows, ablation_tables, introduction, main_metric, paired_differences
from .figures import (ArtifactFn, HistoryFn, ablation_figures, crop_figures, kernel_figures, loss_figures,
                      tradeoff_figures, width_figures)
from .html import write_index
from .tables import METRICS, Table, comparison_tables, prepare, write_table

__all__ = ["build_report", "own_folder", "ArtifactFn", "HistoryFn", "METRICS"]

OWNED_MARKER = ".zssrgan-output"  # written into every folder zssrgan creates for its output


def own_folder(out: Path, own: tuple[str, ...], replace: tuple[str, ...] = ()) -> Path:
    """``out``, created when missing; it must be empty or an earlier output of zssrgan (it holds
    the marker file and only ``own`` entries), so nothing of the user's is overwritten, attached to
    MLflow or deleted; then its ``replace`` entries are removed to be written afresh."""
    if out.exists():
        if not out.is_dir():
            raise InputError(f"output {out} exists and is not a folder")
        entries = {p.name for p in out.iterdir()}
        if entries and OWNED_MARKER not in entries:
            raise InputError(f"output folder {out} is not empty and was not written by zssrgan "
                             f"({', '.join(sorted(entries)[:5])}); choose a new or empty folder")
        other = sorted(entries - set(own) - {OWNED_MARKER})
        if other:
            raise InputError(f"output folder {out} already holds other files ({', '.join(other[:5])}); "
                             f"choose a new or empty folder")
        for name in replace:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
            elif (out / name).exists():
                (out / name).unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / OWNED_MARKER).touch()
    return out


def build_report(runs: pd.DataFrame, out: str | Path, artifact: Optional[ArtifactFn] = None,
                 history: Optional[HistoryFn] = None, title: str = "zssrgan comparison",
                 context: Optional[dict] = None, reference_method: Optional[str] = None) -> Path:
    """Write the report for ``runs`` (``mlflow.search_runs`` child runs) into ``out`` and return
    ``out/index.html``. ``artifact(run_id, name)`` gives a local copy of a run's artifact (``sr.png``,
    ``kernel.npy``, ``true_kernel.npy``) or None; ``history(run_id, key)`` gives a DataFrame with
    columns ``step`` and ``value``; without them the picture and loss figures are skipped with a
    note. A grid sweep's ablation compares each run with the same method at the first value of the
    ablated key, or with ``reference_method`` at the same grid point. ``out`` must be new, empty or
    an earlier report's folder."""
    frame = prepare(runs)
    rows, points = ablation_rows(frame)
    if reference_method is not None and rows.empty:
        raise InputError(f"a reference method ({reference_method}) compares the points of a grid; "
                         "these runs have no grid")
    metric = main_metric(frame)
    paired = paired_differences(rows, points, metric[0], reference_method) if not rows.empty else None
    out = own_folder(Path(out).expanduser().resolve(), ("index.html", "tables", "figures"),
                     replace=("tables", "figures"))
    ablation = ablation_tables(rows, paired, metric) if paired is not None else []
    tables: list[tuple[Table, dict[str, Path]]] = [(t, write_table(t, out / "tables"))
                                                   for t in comparison_tables(frame) + ablation]
    sections = [
        ("Kernels", "Estimated (or used) kernels beside the true kernel, centred, on one pixel scale.",
         kernel_figures(frame, out, artifact)),
        ("Zoomed crops", "The same region for every method; the red box marks it on the full frame.",
         crop_figures(frame, out, artifact)),
        ("ZSSRGAN losses", "Reconstruction (L1) and adversarial losses of ZSSRGAN's SR network.",
         loss_figures(frame, out, history)),
        ("Trade-offs", "Each dot is one run; diamonds are method means. Time is the method's own job: "
         "methods that reuse a shared kernel estimate also need the estimate row's time once per image.",
         tradeoff_figures(frame, out)),
    ]
    if frame["kernel_width"].notna().any():
        sections.append(("Kernel width", "PSNR-Y against the width of the blur, per method: where each method "
                         "breaks as the blur widens (mean ± std over images and seeds).", width_figures(frame, out)))
    if paired is not None:
        sections.append(("Ablation", introduction(reference_method), ablation_figures(paired, out, metric[1])))
    failed = frame[frame["failed"]]
    failures = [(f"{r.method} on {r.image} x{r.scale} (run {r.run_id})", (r.error or "failed").splitlines()[0])
                for r in failed.itertuples()]
    done = frame[~frame["failed"]]
    summary = {
        "runs": f"{len(done)} finished, {len(failed)} failed",
        "methods": ", ".join(done["method"].unique()),
        "images": len(done["image"].unique()),
        "scales": ", ".join(f"x{s}" for s in sorted(done["scale"].unique())),
        "seeds": len(done["seed"].unique()),
    }
    protocols = [p for p in done["protocol"].unique() if p]
    if protocols:
        summary["protocols"] = ", ".join(protocols)
    return write_index(out, title, {**(context or {}), **summary}, tables, sections, failures)
