"""Figures (matplotlib, Agg, PNG): kernels, zoomed crops, ZSSRGAN's losses, the PSNR/time and
PSNR/sharpness trade-offs, PSNR against the kernel width and the ablation's paired differences.

Every figure function returns a :class:`Figure` with either a file or a note saying why the data
for it is absent (real photos have no PSNR, a sweep without ZSSRGAN has no adversarial loss), so
the page can say so instead of showing a broken image. Figures use ``matplotlib.figure.Figure``
directly: no pyplot state, no display needed.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Rectangle
from scipy import ndimage

from ..io import load_image, load_kernel
from ..metrics import rgb2y
from .tables import ESTIMATE, base_method, method_order, value_key

ArtifactFn = Callable[[str, str], Optional[Path]]  # (run_id, artifact name) -> local file or None
HistoryFn = Callable[[str, str], pd.DataFrame]  # (run_id, metric key) -> columns step, value

_DPI = 100
_LOSS_KEY = re.compile(r"^zssr_x\d+\.loss")


@dataclass
class Figure:
    """One figure of the page: ``path`` (relative to the report folder) or ``note`` when skipped."""

    title: str
    path: Optional[str] = None
    note: str = ""


def safe_name(text: str) -> str:
    """A file-name part made of ``[A-Za-z0-9._-]`` only: image and method names come from runs."""
    cleaned = re.sub(r"\.{2,}", "_", re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)))
    return re.sub(r"_{2,}", "_", cleaned).strip("._")[:80] or "unnamed"


def _save(fig: MplFigure, out: Path, name: str) -> str:
    """Save under ``out/figures/`` and return the path relative to ``out`` (refusing escapes)."""
    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / f"{safe_name(name)}.png").resolve()
    if folder.resolve() not in target.parents:
        raise ValueError(f"figure name {name!r} would write outside {out}")
    fig.savefig(target, dpi=_DPI, bbox_inches="tight")
    return target.relative_to(out.resolve()).as_posix()


def _colours(methods) -> dict[str, tuple]:
    """One colour per method, stable across figures (table order)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(method_order(methods))}


def representatives(frame: pd.DataFrame) -> pd.DataFrame:
    """One finished run per (image, scale, method): the lowest seed of the first grid point, so
    picture figures compare methods on the same input and settings."""
    done = frame[~frame["failed"]].sort_values(["grid", "seed"], kind="stable")
    return done.groupby(["image", "scale", "method"], sort=False).head(1).sort_index()  # table order


def _load(artifact: Optional[ArtifactFn], run_id: str, name: str, loader) -> Optional[np.ndarray]:
    if artifact is None:
        return None
    path = artifact(run_id, name)
    return None if path is None else loader(path)


def _local(path: str) -> Optional[np.ndarray]:
    """An input image named by a run's params, when this machine has it."""
    return load_image(path) if path and Path(path).is_file() else None


def _common_view(kernels: list[np.ndarray], keep: float = 1e-3) -> list[np.ndarray]:
    """The kernels centred on one canvas and cut to the union of their supports (taps above
    ``keep`` x peak, one-pixel margin), so panels share one pixel scale and sizes compare."""
    size = max(max(k.shape) for k in kernels)
    canvases = []
    for k in kernels:
        canvas = np.zeros((size, size))
        top, left = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
        canvas[top:top + k.shape[0], left:left + k.shape[1]] = k
        canvases.append(canvas)
    rows, cols = np.nonzero(np.any([c > keep * c.max() for c in canvases], axis=0))
    if rows.size == 0:
        return canvases
    lo, hi = max(min(rows.min(), cols.min()) - 1, 0), min(max(rows.max(), cols.max()) + 2, size)
    return [c[lo:hi, lo:hi] for c in canvases]


def _grid_axes(fig: MplFigure, count: int, columns: int):
    rows = math.ceil(count / columns)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return axes[:count]


def kernel_figures(frame: pd.DataFrame, out: Path, artifact: Optional[ArtifactFn]) -> list[Figure]:
    """Per image and scale: the true kernel beside every method's estimated or used kernel."""
    figures = []
    for (image, scale), group in representatives(frame).groupby(["image", "scale"], sort=False):
        title = f"Kernels: {image}, x{scale}"
        panels, truth = [], None
        for row in group.itertuples():
            if truth is None:
                truth = _load(artifact, row.run_id, "true_kernel.npy", load_kernel)
            kernel = _load(artifact, row.run_id, "kernel.npy", load_kernel)
            if kernel is not None:
                error = f"\nerror {row.kernel_error:.3f}" if not pd.isna(row.kernel_error) else ""
                panels.append((f"{row.method}{error}", kernel))
        if truth is not None:
            panels.insert(0, ("true kernel", truth))
        if not panels:
            figures.append(Figure(title, note="no run logged a kernel for this image"))
            continue
        fig = MplFigure(figsize=(2.1 * min(len(panels), 6), 2.4 * math.ceil(len(panels) / 6)))
        views = _common_view([kernel for _, kernel in panels])
        for ax, (label, _), view in zip(_grid_axes(fig, len(panels), min(len(panels), 6)), panels, views):
            ax.imshow(view, cmap="viridis", interpolation="nearest")
            ax.set_title(label, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        figures.append(Figure(title, _save(fig, out, f"kernels_{image}_x{scale}")))
    return figures


def _crop_box(reference: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` window with the most edges: where methods differ."""
    y = rgb2y(reference) if reference.ndim == 3 else reference
    energy = np.hypot(*np.gradient(y))
    mean = ndimage.uniform_filter(energy, size=size, mode="constant")
    half = size // 2
    valid = mean[half:reference.shape[0] - size + half + 1, half:reference.shape[1] - size + half + 1]
    top, left = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(top), int(left)


def crop_figures(frame: pd.DataFrame, out: Path, artifact: Optional[ArtifactFn]) -> list[Figure]:
    """Per image and scale: the same zoomed region for the LR input, every method and the ground
    truth when known (the ZSSRGAN report's Figures 3-5), and the full frame with the region marked."""
    figures = []
    for (image, scale), group in representatives(frame).groupby(["image", "scale"], sort=False):
        title = f"Zoomed crops: {image}, x{scale}"
        outputs = []
        for row in group.itertuples():
            sr = _load(artifact, row.run_id, "sr.png", load_image)
            if sr is not None:
                psnr = f"\n{row.psnr_y:.2f} dB" if not pd.isna(row.psnr_y) else ""
                outputs.append((f"{row.method}{psnr}", sr))
        if not outputs:
            figures.append(Figure(title, note="no run logged an SR image (sr.png) for this image"))
            continue
        first = group.iloc[0]
        gt, lr = _local(first["gt_path"]), _local(first["lr_path"])
        if gt is not None and gt.shape != outputs[0][1].shape:
            gt = None
        reference = gt if gt is not None else outputs[0][1]
        h, w = reference.shape[:2]
        size = max(8, min(h, w) // 3)
        top, left = _crop_box(reference, size)
        panels = [(label, img[top:top + size, left:left + size]) for label, img in outputs]
        if lr is not None and lr.shape[0] * scale == h and lr.shape[1] * scale == w:
            s = size // scale
            patch = lr[top // scale:top // scale + s, left // scale:left // scale + s]
            panels.insert(0, ("LR input (nearest)", np.repeat(np.repeat(patch, scale, 0), scale, 1)))
        if gt is not None:
            panels.append(("ground truth", gt[top:top + size, left:left + size]))
        panels.insert(0, ("full frame" + (" (ground truth)" if gt is not None else f" ({outputs[0][0]})"),
                          reference))
        columns = min(len(panels), 5)
        fig = MplFigure(figsize=(2.6 * columns, 2.9 * math.ceil(len(panels) / columns)))
        for i, (ax, (label, img)) in enumerate(zip(_grid_axes(fig, len(panels), columns), panels)):
            ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
            if i == 0:
                ax.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, ec="red", lw=1.5))
            ax.set_title(label, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        figures.append(Figure(title, _save(fig, out, f"crops_{image}_x{scale}")))
    return figures


def loss_figures(frame: pd.DataFrame, out: Path, history: Optional[HistoryFn]) -> list[Figure]:
    """ZSSRGAN's two losses (L1 reconstruction and adversarial) over the steps, one row per ZSSRGAN
    method on its first image (the ZSSRGAN report's Figure 6)."""
    title = "ZSSRGAN losses over training steps"
    rows = representatives(frame[frame["method"].str.startswith("zssrgan")]).groupby("method", sort=False).head(1)
    curves = []
    for _, row in rows.iterrows():
        keys = sorted((k for k in frame.columns if _LOSS_KEY.match(k) and not pd.isna(row[k])),
                      key=lambda k: ("l1" not in k, k))  # reconstruction first, as in the report's figure
        series = {k: history(row["run_id"], k) for k in keys} if history else {}
        series = {k: v for k, v in series.items() if len(v)}
        if series:
            curves.append((row, series))
    if not curves:
        return [Figure(title, note="no ZSSRGAN run logged loss curves (zssr_x<s>.loss_*) in this sweep")]
    columns = max(len(series) for _, series in curves)
    fig = MplFigure(figsize=(4.2 * columns, 2.8 * len(curves)))
    axes = fig.subplots(len(curves), columns, squeeze=False)
    for (row, series), ax_row in zip(curves, axes):
        for ax in ax_row[len(series):]:
            ax.set_visible(False)
        for ax, (key, points) in zip(ax_row, series.items()):
            ax.plot(points["step"], points["value"], lw=1, marker="o" if len(points) < 20 else None, ms=3)
            ax.set_title(f"{row['method']} on {row['image']}: {key}", fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=8)
    fig.tight_layout()
    return [Figure(title, _save(fig, out, "losses"))]


def _scatter(frame: pd.DataFrame, out: Path, x: str, y: str, xlabel: str, ylabel: str, name: str,
             title: str, log_x: bool = False) -> Figure:
    done = frame[~frame["failed"] & frame[x].notna() & frame[y].notna()]
    if done.empty:
        return Figure(title, note=f"no run logged both {x} and {y} (e.g. real photos have no ground truth)")
    colours = _colours(done["method"])
    fig = MplFigure(figsize=(7, 4.5))
    ax = fig.subplots()
    for method, group in done.groupby("method", sort=False):
        ax.scatter(group[x], group[y], s=18, alpha=0.45, color=colours[method])
        ax.scatter(group[x].mean(), group[y].mean(), s=90, marker="D", edgecolor="black",
                   color=colours[method], label=method)
    if log_x and (done[x] > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", title="method (diamond = mean)", title_fontsize=8)
    return Figure(title, _save(fig, out, name))


def tradeoff_figures(frame: pd.DataFrame, out: Path) -> list[Figure]:
    """PSNR against time per method, and PSNR against sharpness (the sharpness/smoothness trade-off
    the ZSSRGAN report describes); each dot is a run."""
    methods = frame[frame["method"].map(base_method) != ESTIMATE]
    return [
        _scatter(methods, out, "time_total", "psnr_y", "time per image (s, log)", "PSNR-Y (dB)",
                 "psnr_vs_time", "PSNR against time", log_x=True),
        _scatter(methods, out, "sharpness", "psnr_y", "sharpness (mean Y gradient)", "PSNR-Y (dB)",
                 "psnr_vs_sharpness", "PSNR against sharpness (the trade-off)"),
    ]


def _mean_lines(ax, data: pd.DataFrame, x: str, metric: str, colours: dict[str, tuple]) -> None:
    """One line per method and scale: ``metric``'s mean ± std (over the other runs) at each ``x``."""
    for (method, scale), group in data.groupby(["method", "scale"], sort=False):
        stats = group.groupby(x)[metric].agg(["mean", "std"]).sort_index()
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3,
                    color=colours[method], label=f"{method} x{scale}")


def width_figures(frame: pd.DataFrame, out: Path) -> list[Figure]:
    """Per protocol and scale that vary the blur's width (gaussian8): PSNR-Y against the width, one
    line per method, mean ± std over images and seeds; where each method breaks as the blur widens."""
    done = frame[~frame["failed"] & frame["kernel_width"].notna()]
    done = done[done["method"].map(base_method) != ESTIMATE]
    colours = _colours(done["method"])
    figures = []
    for (protocol, scale), group in done.groupby(["protocol", "scale"], sort=False):
        title = f"PSNR against kernel width: {protocol or 'unknown protocol'}, x{scale}"
        scored = group[group["psnr_y"].notna()]
        if scored.empty:
            figures.append(Figure(title, note="no run logged psnr_y (no ground truth)"))
            continue
        fig = MplFigure(figsize=(7, 4.5))
        ax = fig.subplots()
        _mean_lines(ax, scored, "kernel_width", "psnr_y", colours)
        ax.set_xlabel("kernel width (Gaussian sigma, HR pixels)")
        ax.set_ylabel("PSNR-Y (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        figures.append(Figure(title, _save(fig, out, f"psnr_vs_width_{protocol}_x{scale}")))
    return figures


def ablation_figures(paired: pd.DataFrame, out: Path, metric: str) -> list[Figure]:
    """For each ablated key: the paired difference in ``metric`` (a title) to the reference against
    the key's value (:func:`~zssrgan.report.ablation.paired_differences`), one line per method and
    scale, bars of ± one standard error; lines are shifted sideways a little so bars do not hide
    each other."""
    figures = []
    for key, data in paired.groupby("key", sort=False):
        reference = data["reference"].iloc[0]
        title = f"Ablation: {metric} against {key}, paired difference to {reference}"
        values = sorted(set(data["value"]), key=value_key)
        numbers = pd.to_numeric(pd.Series(values), errors="coerce")
        numeric = bool(numbers.notna().all())
        position = dict(zip(values, numbers if numeric else range(len(values))))
        span = (max(position.values()) - min(position.values())) or 1.0
        lines = list(data.groupby(["method", "scale"], sort=False))
        colours = _colours(data["method"])
        fig = MplFigure(figsize=(7, 4.5))
        ax = fig.subplots()
        ax.axhline(0.0, color="grey", lw=1)
        for i, ((method, scale), line) in enumerate(lines):
            shift = (i - (len(lines) - 1) / 2) * 0.015 * span
            x = [position[v] + shift for v in line["value"]]
            ax.errorbar(x, line["mean"], yerr=line["se"].fillna(0), marker="o", capsize=3, color=colours[method],
                        linestyle="-" if scale == 2 else "--", label=f"{method} x{scale}")
        if not numeric:
            ax.set_xticks(range(len(values)), values)
        ax.set_xlabel(key)
        ax.set_ylabel(f"Δ {metric} vs {reference}\n(mean ± s.e. over images and seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        figures.append(Figure(title, _save(fig, out, f"ablation_{key}")))
    return figures
