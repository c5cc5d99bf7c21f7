"""The pictures and files a job run keeps as MLflow artifacts."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

def _save_kernel_picture(path: Path, kernel: np.ndarray, true_kernel: Optional[np.ndarray]) -> None:
    """The kernel the job used, beside the true one when it is known."""
    panels = [("kernel", kernel)] + ([("true kernel", true_kernel)] if true_kernel is not None else [])
    fig = Figure(figsize=(3.6 * len(panels), 3.0), dpi=100)
    FigureCanvasAgg(fig)
    for i, (title, k) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        fig.colorbar(ax.imshow(k, cmap="viridis", interpolation="nearest"), ax=ax)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)


def _save_curves_picture(history: dict[str, list[dict[str, float]]], path: Path) -> None:
    """One panel per phase, one line per reported value; log scale when every value is positive."""
    phases = [p for p, rows in history.items() if rows]
    fig = Figure(figsize=(5.0, 2.6 * len(phases)), dpi=100)
    FigureCanvasAgg(fig)
    for i, phase in enumerate(phases, start=1):
        ax = fig.add_subplot(len(phases), 1, i)
        rows = history[phase]
        names = sorted({k for row in rows for k in row} - {"step"})
        for name in names:
            points = [(row["step"], row[name]) for row in rows if name in row]
            ax.plot([s for s, _ in points], [v for _, v in points], label=name, linewidth=1)
        values = [row[n] for row in rows for n in names if n in row]
        if values and all(v > 0 and math.isfinite(v) for v in values):
            ax.set_yscale("log")
        ax.set_title(phase, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def write_artifacts(evaluation, folder: Path) -> None:
    """sr.png, kernel.npy/.mat/.png, true_kernel.npy and curves.png, for what the job produced."""
    from zssrgan.io import save_image, save_kernel

    if evaluation.sr is not None:
        save_image(folder / "sr.png", evaluation.sr)
    if evaluation.kernel is not None:
        save_kernel(folder / "kernel.npy", evaluation.kernel)
        save_kernel(folder / "kernel.mat", evaluation.kernel)
        _save_kernel_picture(folder / "kernel.png", evaluation.kernel, evaluation.true_kernel)
    if evaluation.true_kernel is not None:
        save_kernel(folder / "true_kernel.npy", evaluation.true_kernel)
    if any(evaluation.history.values()):
        _save_curves_picture(evaluation.history, folder / "curves.png")


