"""How training loops report: values recorded on the device come back as floats, step by step."""
from __future__ import annotations

import pytest
import torch

from zssrgan.progress import History, StepValues


def test_step_values_come_back_as_floats_in_step_order_and_the_record_empties():
    values = StepValues()
    loss = torch.tensor(0.5, requires_grad=True) * 2  # a graph: detached when recorded
    values.add(0, {"lr": 0.1, "loss": loss}, packed=(("a", "b"), torch.tensor([1.0, 2.0])))
    values.add(0, {"extra": torch.tensor(3.0)})  # the same step: one row
    values.add(1, packed=(("a", "b"), torch.tensor([4.0, 5.0], dtype=torch.float64)))
    assert len(values) == 2
    rows = values.flush()
    assert rows == [(0, {"a": 1.0, "b": 2.0, "lr": 0.1, "loss": 1.0, "extra": 3.0}), (1, {"a": 4.0, "b": 5.0})]
    assert all(type(v) is float for _, row in rows for v in row.values())
    assert len(values) == 0 and values.flush() == []


def test_a_history_records_a_batch_of_steps_and_forwards_each():
    seen = []
    history = History(lambda phase, step, row: seen.append((phase, step, dict(row))))
    values = StepValues()
    for step in range(3):
        values.add(step, packed=(("loss",), torch.tensor([float(step)])))
    history.record("kernelgan", values)
    assert history.as_dict() == {"kernelgan": [{"step": s, "loss": float(s)} for s in range(3)]}
    assert seen == [("kernelgan", s, {"loss": float(s)}) for s in range(3)] and len(values) == 0


def test_values_of_the_wrong_size_are_refused_when_recorded_not_misread_at_the_flush():
    values = StepValues()
    values.add(0, packed=(("a",), torch.tensor([1.0])))
    with pytest.raises(ValueError, match="step 1: a, b recorded with 3 values, expected 2"):
        values.add(1, packed=(("a", "b"), torch.tensor([1.0, 2.0, 3.0])))
    with pytest.raises(ValueError, match="step 1: loss recorded with 2 values, expected 1"):
        values.add(1, {"loss": torch.tensor([1.0, 2.0])})
    assert values.flush() == [(0, {"a": 1.0})]  # what was recorded stays readable


def test_double_precision_values_keep_their_precision():
    values = StepValues()
    values.add(0, packed=(("x",), torch.tensor([1 / 3], dtype=torch.float64)))
    assert values.flush()[0][1]["x"] == 1 / 3


def test_a_loop_s_batches_reach_the_history_every_n_steps_and_the_rest_at_the_end():
    seen = []
    history = History(lambda phase, step, row: seen.append(step))
    with history.batches("kernelgan", every=3) as add:
        for step in range(7):
            add(step, {"lr": 0.1}, packed=(("loss",), torch.tensor([float(step)])))
            assert len(seen) == step + 1 - (step + 1) % 3  # nothing waits once a batch is full
    assert seen == list(range(7))
    assert history.as_dict()["kernelgan"][-1] == {"step": 6, "lr": 0.1, "loss": 6.0}
