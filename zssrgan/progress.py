"""How training loops report: a callback, a history that records it, and phase timing.

Training code never logs anywhere itself; it calls ``callback(phase, step, values)`` and the
caller decides what to do (the sweep driver sends the recorded history to MLflow).
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

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

    def record(self, phase: str, values: "StepValues") -> None:
        """Every step ``values`` holds (one transfer from the device), oldest first."""
        for step, row in values.flush():
            self(phase, step, row)

    @contextmanager
    def batches(self, phase: str, every: int) -> Iterator[Callable[..., None]]:
        """A training loop's ``add(step, values=None, packed=None)`` (as :meth:`StepValues.add`):
        its steps are recorded here ``every`` steps at a time (one transfer from the device each),
        the rest when the block ends."""
        pending = StepValues()

        def add(step: int, values: Optional[Mapping[str, Union[float, torch.Tensor]]] = None,
                packed: Optional[tuple[Sequence[str], torch.Tensor]] = None) -> None:
            pending.add(step, values, packed)
            if len(pending) >= every:
                self.record(phase, pending)

        yield add
        self.record(phase, pending)

    def as_dict(self) -> dict[str, list[dict[str, float]]]:
        return {phase: list(rows) for phase, rows in self.curves.items()}


class StepValues:
    """Values of the steps not yet reported: floats as given, device tensors kept on the device
    until :meth:`flush` reads them all in one transfer, so that a training loop can record every
    step without waiting for the device at every step. A step's losses may come as one vector
    (``packed=(names, vector)``): a single tensor to keep instead of one per value."""

    def __init__(self) -> None:
        Row = tuple[int, dict[str, Union[float, torch.Tensor]], list[tuple[tuple[str, ...], torch.Tensor]]]
        self.rows: list[Row] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, step: int, values: Optional[Mapping[str, Union[float, torch.Tensor]]] = None,
            packed: Optional[tuple[Sequence[str], torch.Tensor]] = None) -> None:
        """Record ``values`` (0-d tensors or numbers) and ``packed`` names with a 1-d tensor of their
        values for ``step`` (merged into the row of the latest step when it is the same); tensors
        are detached, so no autograd graph is kept alive until the flush."""
        values = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in (values or {}).items()}
        vectors = [] if packed is None else [(tuple(packed[0]), packed[1].detach())]
        sizes = [(name, v.numel(), 1) for name, v in values.items() if isinstance(v, torch.Tensor)]
        sizes += [(", ".join(names), vector.numel(), len(names)) for names, vector in vectors]
        for name, size, expected in sizes:  # a flush reads one flat run of numbers: sizes must match
            if size != expected:
                raise ValueError(f"step {step}: {name} recorded with {size} values, expected {expected}")
        if self.rows and self.rows[-1][0] == step:
            self.rows[-1][1].update(values)
            self.rows[-1][2].extend(vectors)
        else:
            self.rows.append((step, values, vectors))

    def flush(self) -> list[tuple[int, dict[str, float]]]:
        """Every recorded row, oldest first, with all values as floats (packed ones first); empties
        the record."""
        rows, self.rows = self.rows, []
        tensors = [t for _, values, vectors in rows for t in (*(v for _, v in vectors),
                                                                *(v for v in values.values() if isinstance(v, torch.Tensor)))]
        numbers = iter(torch.cat([t.double().reshape(-1) for t in tensors]).tolist() if tensors else [])
        out = []
        for step, values, vectors in rows:
            row = {name: next(numbers) for names, _ in vectors for name in names}
            row.update({name: next(numbers) if isinstance(v, torch.Tensor) else float(v) for name, v in values.items()})
            out.append((step, row))
        return out


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
