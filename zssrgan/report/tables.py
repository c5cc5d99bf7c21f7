"""Tables: MLflow runs (``mlflow.search_runs`` columns) in, mean ± std summaries out, each written
as CSV (numbers, for further analysis), Markdown (for a README) and an HTML fragment (for the page).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from ..errors import InputError
from ..estimators import ESTIMATORS
from ..methods import GENERATOR, METHODS, applicable

# (metric key, column title, decimals): the ZSSRGAN report's Table 1 columns, plus what explains them
METRICS = (
    ("psnr_y", "PSNR-Y (dB)", 2),
    ("ssim_y", "SSIM-Y", 4),
    ("kernel_error", "kernel error", 3),
    ("lr_consistency", "LR-consistency (dB)", 2),
    ("sharpness", "sharpness", 4),
    ("time_total", "time (s)", None),  # None: three significant digits (ms for bicubic, hours on CPU)
)
ESTIMATE = "estimate"  # the method tag of the shared kernel-estimate runs
_KEYS = ("method", "image", "scale", "seed", "grid", "estimator")


def label(method: str, estimator: str) -> str:
    """A report row's name: the method, with the estimator behind its kernel where it uses one."""
    return f"{method} [{estimator}]" if estimator else method


def base_method(name: str) -> str:
    return name.split(" [", 1)[0]


def method_order(names) -> list[str]:
    """Rows in the table's order (METHODS, then the shared estimates, each by estimator), unknown
    names last."""
    known = list(METHODS) + [ESTIMATE]
    return sorted(set(names), key=lambda name: (known.index(base_method(name)) if base_method(name) in known
                                                else len(known), name))


def _column(runs: pd.DataFrame, *candidates: str) -> pd.Series:
    """The first of ``candidates`` that the runs have, filled from the later ones where missing."""
    out = pd.Series([None] * len(runs), index=runs.index, dtype=object)
    for name in candidates:
        if name in runs.columns:
            out = out.where(out.notna(), runs[name])
    return out


def latest_attempts(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished or failed runs only (interrupted ones carry no result), one per job key: a job
    retried or repeated by a later sweep counts once, its latest success winning over failures."""
    if "status" in runs.columns:
        runs = runs[runs["status"].isin(["FINISHED", "FAILED"])]
    if "tags.zssrgan.job_key" not in runs.columns:
        return runs
    finished = runs["status"] == "FINISHED" if "status" in runs.columns else True
    ranked = runs.assign(_finished=finished)
    order = ["_finished"] + (["start_time"] if "start_time" in runs.columns else [])
    ranked = ranked.sort_values(order, kind="stable")
    keyless = ranked["tags.zssrgan.job_key"].isna()
    latest = ranked[~keyless].drop_duplicates("tags.zssrgan.job_key", keep="last")
    return pd.concat([latest, ranked[keyless]]).drop(columns="_finished").sort_index()


def prepare(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per job: ``run_id``, ``method`` (its :func:`label`, with the estimator),
    ``estimator``, ``image``, ``scale``, ``seed``, ``grid``, ``failed``, ``error``, ``gt_path``,
    ``lr_path``, ``protocol`` ("" when unknown), ``kernel_width`` (``NaN`` where the protocol has
    none), every metric (``NaN`` when not logged) and the curve metrics (``<phase>.<value>``
    columns, last value)."""
    runs = latest_attempts(runs)
    if runs.empty:
        raise InputError("no runs to report: the experiment (or sweep) holds no finished child runs")
    frame = pd.DataFrame({"run_id": runs["run_id"].astype(str)}, index=runs.index)
    for key in _KEYS:
        frame[key] = _column(runs, f"tags.zssrgan.{key}", f"params.{key}")
    if frame["method"].isna().any():
        raise InputError("some runs carry no zssrgan.method tag or method param: not zssrgan child runs")
    frame["scale"] = pd.to_numeric(frame["scale"], errors="coerce").fillna(0).astype(int)
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").fillna(0).astype(int)
    frame["image"] = frame["image"].fillna("?").astype(str)
    frame["grid"] = frame["grid"].fillna("").astype(str)
    frame["estimator"] = frame["estimator"].fillna("").astype(str)
    frame["method"] = [label(m, e) for m, e in zip(frame["method"], frame["estimator"])]
    frame["error"] = _column(runs, "tags.zssrgan.error").fillna("").astype(str)
    status = runs["status"] if "status" in runs.columns else pd.Series("FINISHED", index=runs.index)
    frame["failed"] = (frame["error"] != "") | (status == "FAILED")
    for key in ("gt_path", "lr_path"):
        frame[key] = _column(runs, f"params.{key}").fillna("").astype(str)
    frame["protocol"] = _protocol_label(runs)
    width = _column(runs, "tags.zssrgan.kernel_width", "params.kernel_width").replace({"": None, "none": None})
    frame["kernel_width"] = pd.to_numeric(width, errors="coerce").round(3)
    metric_columns = [c for c in runs.columns if c.startswith("metrics.")]
    for column in metric_columns:
        frame[column[len("metrics."):]] = pd.to_numeric(runs[column], errors="coerce")
    for key, _, _ in METRICS:
        if key not in frame.columns:
            frame[key] = math.nan
    order = {m: i for i, m in enumerate(method_order(frame["method"]))}
    frame = frame.assign(_order=frame["method"].map(order), _grid=grid_rank(frame["grid"]))
    frame = frame.sort_values(["_order", "scale", "_grid", "image", "seed"], kind="stable")
    return frame.drop(columns=["_order", "_grid"]).reset_index(drop=True)


def _protocol_label(runs: pd.DataFrame) -> pd.Series:
    """The degradation protocol of each run (``make-dataset``'s), with its noise level when there was
    noise (``gaussian8 + noise 15``): runs of one label are comparable; "" when unknown."""
    protocol = _column(runs, "tags.zssrgan.protocol", "params.protocol").replace("none", None).fillna("").astype(str)
    noise = pd.to_numeric(_column(runs, "params.noise"), errors="coerce").fillna(0.0)
    return protocol.where((noise <= 0) | (protocol == ""), protocol + " + noise " + noise.map("{:g}".format))


def parse_grid(grid: str) -> dict[str, str]:
    """``"a=1;b=x"`` -> ``{"a": "1", "b": "x"}`` (the zssrgan.grid tag)."""
    return dict(part.split("=", 1) for part in grid.split(";") if "=" in part)


def value_key(value: str) -> tuple:
    """Grid values in value order: numbers numerically (5 before 10), then text."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def grid_rank(grids: pd.Series) -> pd.Series:
    """Ablation points in value order, as ranks."""
    def key(grid: str) -> list[tuple]:
        return [value_key(value) for value in parse_grid(grid).values()]

    return grids.map({g: i for i, g in enumerate(sorted(set(grids), key=key))})


@dataclass
class Table:
    """A summary: ``numbers`` (mean/std/n columns, for CSV) and ``text`` (``mean ± std`` cells)."""

    name: str
    title: str
    keys: list[str]
    numbers: pd.DataFrame
    text: pd.DataFrame


def format_cell(mean: float, std: float, n: int, decimals: Optional[int]) -> str:
    if pd.isna(mean):
        return "–"
    if decimals is None:
        decimals = min(4, max(0, 2 - math.floor(math.log10(abs(mean))))) if mean else 0
    cell = f"{mean:.{decimals}f}"
    return cell if n < 2 or pd.isna(std) else f"{cell} ± {std:.{decimals}f}"


def summarise(frame: pd.DataFrame, by: list[str], name: str, title: str) -> Table:
    """Mean ± std (sample std over images and seeds) of every metric per group; metrics that no
    group has are left out, so real photos give a table without PSNR rather than a column of dashes."""
    done = frame[~frame["failed"]]
    present = [(k, t, d) for k, t, d in METRICS if done[k].notna().any()]
    grouped = done.groupby(by, sort=False)
    numbers = grouped.size().rename("n").to_frame()
    for key, _, _ in present:
        numbers[f"{key}_mean"] = grouped[key].mean()
        numbers[f"{key}_std"] = grouped[key].std()
        numbers[f"{key}_count"] = grouped[key].count()
    numbers = numbers.reset_index()
    text = numbers[by].astype(str).copy()
    text["n"] = numbers["n"].astype(str)
    for key, label, decimals in present:
        text[label] = [format_cell(m, s, int(c), decimals) for m, s, c in
                       zip(numbers[f"{key}_mean"], numbers[f"{key}_std"], numbers[f"{key}_count"])]
    return Table(name, title, by, numbers, text)


def comparison_tables(frame: pd.DataFrame) -> list[Table]:
    """The method x scale table (the ZSSRGAN report's Table 1, with spread), the per-image table
    and, when the sweep had them, the per-protocol (several protocols) and per-kernel-width tables;
    one row per job (a job shared by the points of a grid counts once)."""
    tables = [
        not_applicable(summarise(frame, ["method", "scale"], "methods",
                                 "Per method and scale: mean ± std over images and seeds"), frame),
        summarise(frame, ["image", "method", "scale"], "per_image",
                  "Per image: mean ± std over seeds"),
    ]
    known = frame[frame["protocol"] != ""]
    protocols = list(known["protocol"].unique())
    if len(protocols) == 1 and len(known) == len(frame):
        tables[0].title += f" ({protocols[0]} protocol)"
    elif protocols:
        tables[0].title += " (protocols pooled)"
        tables.append(summarise(known, ["protocol", "method", "scale"], "per_protocol",
                                "Per degradation protocol: mean ± std over images and seeds"))
    widths = frame[frame["kernel_width"].notna()].sort_values(["protocol", "scale", "kernel_width"], kind="stable")
    if not widths.empty:
        tables.append(summarise(widths, ["protocol", "scale", "kernel_width", "method"], "per_width",
                                "Per kernel width: mean ± std over images and seeds"))
    if (frame["grid"] != "").any():
        tables[0].title += " (grid points pooled)"
    return tables


def not_applicable(table: Table, frame: pd.DataFrame) -> Table:
    """Rows marked "n/a" for the methods that cannot run with an estimator of the report (the
    semi end-to-end mode with an estimator that trains no generator), so their absence is explained."""
    estimators = sorted(set(frame["estimator"]) - {""})
    methods = {base_method(m) for m in frame["method"]} & {n for n, m in METHODS.items() if m.estimate == GENERATOR}
    rows = [{"method": label(m, e), "scale": str(s), "n": "0", **{c: "n/a" for c in table.text.columns[3:]}}
            for m in sorted(methods) for e in estimators if e in ESTIMATORS and applicable(m, e) for s in sorted(set(frame["scale"]))]
    if rows:
        table.text = pd.concat([table.text, pd.DataFrame(rows, columns=table.text.columns)], ignore_index=True)
    return table


def to_markdown(text: pd.DataFrame) -> str:
    def row(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(text.columns), row(["---"] * len(text.columns))]
    lines += [row(values) for values in text.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_html(text: pd.DataFrame, keys: int = 0) -> str:
    """A plain HTML table; the first ``keys`` columns (the group names) are left-aligned."""
    def cell(tag: str, i: int, value) -> str:
        align = ' class="key"' if i < keys else ""
        return f"<{tag}{align}>{html.escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(text.columns))
    body = "\n".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(values)) + "</tr>"
                     for values in text.itertuples(index=False))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"


def write_table(table: Table, folder: Path) -> dict[str, Path]:
    """``<name>.csv``, ``<name>.md`` and ``<name>.html`` in ``folder``; returns them by format."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {fmt: folder / f"{table.name}.{fmt}" for fmt in ("csv", "md", "html")}
    table.numbers.to_csv(paths["csv"], index=False)
    paths["md"].write_text(f"{table.title}\n\n{to_markdown(table.text)}", encoding="utf-8")
    paths["html"].write_text(to_html(table.text, keys=len(table.keys)), encoding="utf-8")
    return paths
