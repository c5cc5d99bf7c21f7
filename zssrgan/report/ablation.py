"""Ablations: the runs of a grid sweep by grid point, and paired differences to a reference.

A run's ``grid`` (its ``zssrgan.grid`` tag) holds the part of the ablation point its job read: a
job whose method reads none of a grid key's section ran once for all its values. Such a run is
counted under every value of the key here, and once in the pooled tables.

Between images, a metric often varies far more (several dB) than an ablated setting moves it (a
few tenths), so the effect is measured pairwise: each run against its reference on the same image,
seed and scale (and the same values of the other grid keys), then averaged with its standard error.
"""
from __future__ import annotations

import itertools
import math
from typing import Optional

import pandas as pd

from ..errors import InputError
from .tables import (METRICS, Table, base_method, format_cell, grid_rank, method_order, parse_grid, summarise,
                     value_key)

_PAIR = ["image", "seed", "scale"]
_ESTIMATOR = "estimator"  # the config key a report row's name carries (tables.label)


def main_metric(frame: pd.DataFrame) -> tuple[str, str, Optional[int]]:
    """(key, title, decimals) of the metric ablations are judged by: PSNR-Y, else (real photos)
    LR-consistency."""
    key = "psnr_y" if frame.loc[~frame["failed"], "psnr_y"].notna().any() else "lr_consistency"
    return next(m for m in METRICS if m[0] == key)


def ablation_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The finished runs of a grid sweep, each under every grid point it belongs to: ``(rows, points)``.

    A grid key that no run of a method records was not read by it, so its runs are repeated under
    each of the key's values (the values the runs record). A run lacking a key that other runs of its
    method record belongs to another sweep's grid (``zssrgan report --sweep all``) and is left out.
    In ``rows``, ``grid`` is the whole point (``key=value;...``) and ``reads`` the keys of the run's
    own tag; ``points`` holds the value of each grid key (one column per key) on the same index."""
    tags = [parse_grid(g) for g in frame["grid"]]
    keys = sorted({k for tag in tags for k in tag})
    values = {k: sorted({tag[k] for tag in tags if k in tag}, key=value_key) for k in keys}
    recorded: dict[str, set] = {}
    for method, tag in zip(frame["method"], tags):
        recorded.setdefault(method, set()).update(tag)
    picks, points, reads = [], [], []
    for position, (method, tag, failed) in enumerate(zip(frame["method"], tags, frame["failed"])):
        if not keys or failed or set(tag) != recorded[method]:
            continue
        free = [k for k in keys if k not in tag]
        for combo in itertools.product(*(values[k] for k in free)):
            picks.append(position)
            points.append({**tag, **dict(zip(free, combo))})
            reads.append(frozenset(tag))
    rows = frame.iloc[picks].reset_index(drop=True)
    points = pd.DataFrame(points, columns=keys)
    rows["grid"] = [";".join(f"{k}={p[k]}" for k in keys) for p in points.to_dict("records")]
    rows["reads"] = reads
    return rows, points


def paired_differences(rows: pd.DataFrame, points: pd.DataFrame, metric: str,
                       reference_method: Optional[str] = None) -> pd.DataFrame:
    """Per grid key, value, method and scale: ``metric`` minus its reference's, paired on image,
    seed, scale and the other grid keys' values, as ``mean``, ``se`` (standard error) and ``n``
    (pairs). The reference is the same method at the key's first value (methods that do not read
    the key are left out: their difference is 0 by construction; across the values of
    ``estimator`` a method is named without its estimator), or, with ``reference_method`` (a
    report row's name or a method's), that method at the same grid point."""
    columns = {f"grid:{k}": points[k] for k in points.columns}
    data = pd.concat([rows[["method", *_PAIR, metric, "reads"]], pd.DataFrame(columns, index=rows.index)], axis=1)
    data = data[data[metric].notna()]
    grid_columns = list(columns)
    if reference_method is not None:
        is_reference = (data["method"] == reference_method) | (data["method"].map(base_method) == reference_method)
        if not is_reference.any():
            raise InputError(f"no runs of reference method {reference_method!r} in the ablation; its methods: "
                             + ", ".join(method_order(data["method"])))
        reference = data.loc[is_reference, [*_PAIR, *grid_columns, metric]]
        if reference.duplicated(_PAIR + grid_columns).any():
            raise InputError(f"reference method {reference_method!r} names several report rows ("
                             + ", ".join(sorted(set(data.loc[is_reference, "method"]))) + "); name one of them")
        pairs = data[~is_reference].merge(reference, on=_PAIR + grid_columns, suffixes=("", "_reference"))
    out = []
    for key in points.columns:
        column = f"grid:{key}"
        if reference_method is None:
            first = min(points[key].dropna(), key=value_key)
            depends = data[data["reads"].map(lambda r: key in r)]
            if key == _ESTIMATOR:  # pair a method's rows across estimators, under the method's own name
                depends = depends.assign(method=depends["method"].map(base_method))
            others = [c for c in grid_columns if c != column]
            reference = depends.loc[depends[column] == first, ["method", *_PAIR, *others, metric]]
            pairs = depends.merge(reference, on=["method", *_PAIR, *others], suffixes=("", "_reference"))
            name = f"{key}={first}"
        else:
            name = reference_method
        difference = pairs[metric] - pairs[f"{metric}_reference"]
        for (value, method, scale), d in difference.groupby([pairs[column], pairs["method"], pairs["scale"]]):
            n = len(d)
            out.append({"key": key, "value": value, "method": method, "scale": int(scale), "reference": name,
                        "n": n, "mean": d.mean(), "se": d.std() / math.sqrt(n) if n > 1 else math.nan})
    table = pd.DataFrame(out, columns=["key", "value", "method", "scale", "reference", "n", "mean", "se"])
    order = {m: i for i, m in enumerate(method_order(table["method"]))}
    rank = {v: i for i, v in enumerate(sorted(set(table["value"]), key=value_key))}
    ranks = table.assign(_value=table["value"].map(rank), _method=table["method"].map(order))
    return ranks.sort_values(["key", "_method", "scale", "_value"]).drop(columns=["_value", "_method"]) \
        .reset_index(drop=True)


def introduction(reference_method: Optional[str]) -> str:
    """What the ablation figures show, for the report page."""
    reference = (f"{reference_method} at the same grid point" if reference_method else
                 "the same method at the ablated key's first value (methods that do not read the key are left out: "
                 "their difference is 0)")
    return ("Each run minus its reference on the same image, seed and scale (and the same values of the other grid "
            f"keys); the reference is {reference}. Points are means over the pairs, bars ± one standard error. A "
            "method that does not read a key ran once for all its values and counts under each of them.")


def ablation_tables(rows: pd.DataFrame, paired: pd.DataFrame, metric: tuple[str, str, Optional[int]]
                    ) -> list[Table]:
    """Per ablation point (mean ± std, each run under every point it belongs to) and the paired
    differences (mean ± standard error)."""
    blocks = rows.groupby(["method", "scale"], sort=False).ngroup()  # rows come in the report's order
    ordered = rows.assign(_block=blocks, _point=grid_rank(rows["grid"]))
    ordered = ordered.sort_values(["_block", "_point"], kind="stable").drop(columns=["_block", "_point"])
    per_point = summarise(ordered, ["grid", "method", "scale"], "ablation",
                          "Per ablation point (zssrgan.grid): mean ± std over images and seeds; a method that does "
                          "not read a key ran once and is counted under each of its values")
    key, title, decimals = metric
    text = paired[["key", "value", "method", "scale", "reference", "n"]].astype(str)
    text[f"Δ {title}"] = [format_cell(m, s, n, decimals) for m, s, n in zip(paired["mean"], paired["se"], paired["n"])]
    difference = Table("ablation_paired", f"Paired differences in {title} to the reference (the same image, seed "
                       "and scale): mean ± standard error over the pairs", ["key", "value", "method", "scale"],
                       paired.assign(metric=key), text)
    return [per_point, difference]
