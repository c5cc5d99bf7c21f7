"""How training loops report: a callback, a history that records it, and phase timing.

Training code never logs anywhere itself; it calls ``callback(phase, step, values)`` and the
caller decides what to do (the sweep driver sends the recorded history to MLflow).
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Optional, Union

import torch

Callback = Callable[[str, int, Mapping[str, float]], None]


class History:
    """Records every reported step per phase and forwards it to an optional callback."""

    def __init__(self, forward: Optional[Callback] = None) -> None:
        self.curves: dict[str, list[dict[str, float]]] = defaultdict(list)
        self.forward = forward

    def __call__(self, phase: str, step: int, values: Mapping[str, float]) -> None:
        self.curves[phase].append({"step": int(step), **{k: float(v) for k, v in values.items()}})
        if self.forward is not None:
            self.forward(phase, step, values)

    def as_dict(self) -> dict[str, list[dict[str, float]]]:
        return {phase: list(rows) for phase, rows in self.curves.items()}


class StepValues:
    """Values of the steps not yet reported: floats as given, 0-d device tensors kept on the device
    until :meth:`flush` reads them all in one transfer, so that a training loop can record every
    step without waiting for the device at every step."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, Union[float, torch.Tensor]]]] = []

    def add(self, step: int, values: Mapping[str, Union[float, torch.Tensor]]) -> None:
        """Record ``values`` for ``step`` (merged into the row of the latest step when it is the same);
        tensors are detached, so no autograd graph is kept alive until the flush."""
        values = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in values.items()}
        if self.rows and self.rows[-1][0] == step:
            self.rows[-1][1].update(values)
        else:
            self.rows.append((step, values))

    def flush(self) -> list[tuple[int, dict[str, float]]]:
        """Every recorded row, oldest first, with all values as floats; empties the record."""
        rows, self.rows = self.rows, []
        places = [(row, name) for _, row in rows for name, value in row.items() if isinstance(value, torch.Tensor)]
        if places:
            numbers = torch.stack([row[name].detach().float().reshape(()) for row, name in places]).tolist()
            for (row, name), number in zip(places, numbers):
                row[name] = number
        return [(step, {name: float(value) for name, value in row.items()}) for step, row in rows]


class Timings:
    """Wall-clock seconds per named phase, accumulated."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def as_dict(self) -> dict[str, float]:
        return dict(self.seconds)
