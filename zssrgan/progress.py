"""How training loops report: a callback, a history that records it, and phase timing.

Training code never logs anywhere itself; it calls ``callback(phase, step, values)`` and the
caller decides what to do (the sweep driver sends the recorded history to MLflow).
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Optional

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
