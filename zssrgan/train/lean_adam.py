"""torch's fused Adam without its per-step Python bookkeeping (same kernel, same results).

A KernelGAN step updates a few dozen small tensors twice; ``torch.optim.Adam.step`` regroups
them by device and dtype and looks up their state every call, which costs more than the update
itself. :class:`LeanAdam` does that once, at its first step, and afterwards calls the fused kernel
on the kept lists.
"""
from __future__ import annotations

from typing import Any

import torch


class LeanAdam(torch.optim.Adam):
    """``torch.optim.Adam(params, lr, betas, fused=True)`` for one parameter group: after the first
    step, steps go straight to ``torch._fused_adam_`` while the same parameters have gradients (any
    change, or a loaded state, goes through torch's step again and rebuilds the lists)."""

    def __init__(self, params, lr: float, betas: tuple[float, float]) -> None:
        super().__init__(params, lr=lr, betas=betas, fused=True)
        self._lists: Any = None

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (as torch's)
        group = self.param_groups[0]
        if closure is None and len(self.param_groups) == 1 and self._lists is not None:
            params, skipped, exp_avgs, exp_avg_sqs, steps = self._lists
            grads = [p.grad for p in params]
            if all(g is not None for g in grads) and all(p.grad is None for p in skipped):
                torch._foreach_add_(steps, 1)
                beta1, beta2 = group["betas"]
                torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"], beta1=beta1,
                                   beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                                   amsgrad=group["amsgrad"], maximize=group["maximize"], grad_scale=None,
                                   found_inf=None)
                return None
        loss = super().step(closure)
        params = [p for p in group["params"] if p.grad is not None]
        lean = len(self.param_groups) == 1 and not group["amsgrad"] and not group["weight_decay"]
        self._lists = None if not lean else (
            params, [p for p in group["params"] if p.grad is None], [self.state[p]["exp_avg"] for p in params],
            [self.state[p]["exp_avg_sq"] for p in params], [self.state[p]["step"] for p in params])
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none or self._lists is None:
            return super().zero_grad(set_to_none)
        for p in self.param_groups[0]["params"]:
            p.grad = None

    def load_state_dict(self, state_dict) -> None:
        self._lists = None
        super().load_state_dict(state_dict)
