"""KernelGAN's discriminator in training mode with a fraction of the operations (same results).

A training step calls D on a few 26x26 crops: hundreds of tiny operations whose launch cost, not
their arithmetic, set the pace. :func:`discriminator_train_forward` computes what successive calls
of :class:`~zssrgan.archs.kernelgan_arch.Discriminator` compute, with these identities (exact in
real arithmetic; float rounding differs):

- D is 1x1 convolutions after the first: with pixels as the rows of a matrix, each is one matmul.
- The 7x7 and the first 1x1 convolution have nothing between them: they compose into one.
- Each BatchNorm absorbs the 1 / sigma of the spectral norms before it: BN(W h / sigma + b) equals
  BN(W h) with eps * sigma^2 in place of eps, gradients through sigma included. The biases of the
  convolutions before a BatchNorm cancel: their gradient is exactly zero and they get none (the
  module computes rounding noise for them, which Adam turns into a drift of up to lr per step that
  training mode never sees). The running statistics, which do see them, are kept exactly.
- Several calls (e.g. D's real and fake batch) run as one pass, each with its own power iteration
  (in call order) and its own BatchNorm statistics; and the tensors may carry a leading run
  dimension, for independent discriminators trained in lock-step.
- The matmul/BatchNorm/ReLU chain has a hand-written backward (:class:`_Body`).
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch

from ..config import ConfigError
from .kernelgan_arch import D_RECEPTIVE_FIELD, Discriminator


def discriminator_train_forward(disc: Discriminator, x: torch.Tensor, groups: int = 1,
                                state: Optional[Mapping[str, torch.Tensor]] = None,
                                weight_grads: bool = True) -> torch.Tensor:
    """``disc`` in training mode on ``groups`` equal batches stacked in ``x`` (..., groups * B, C,
    h, w), as ``groups`` successive calls ``disc(batch)``: each call's power iteration (u and v
    updated in place, in order), BatchNorm statistics and running-statistics update. Returns
    (..., groups, B, 1, h - 6, w - 6).

    ``state``: the tensors by ``state_dict`` name, ``disc.tensors()`` by default, or stacked along
    a leading dimension (R, *shape) for R independent discriminators, run r fed ``x[r]``.
    ``weight_grads=False``: gradients reach ``x`` only (a generator step), not D's tensors.
    """
    if not disc.bn_names:
        raise ConfigError("the fast discriminator needs at least one BatchNorm block (kernelgan.d_blocks >= 1)")
    state = disc.tensors() if state is None else state
    grad = weight_grads and torch.is_grad_enabled()
    with torch.set_grad_enabled(grad):
        first, hidden, last = _weights(disc, state)
        sigma_first, sigma_hidden, sigma_last = _spectral_norms(disc, state, (first, hidden, last), groups)
        # block b's matmul output = scale[b] x (the module's pre-BatchNorm activation - a constant)
        scale = torch.cat([(sigma_first * sigma_hidden[..., 0, :]).unsqueeze(-2), sigma_hidden[..., 1:, :]], -2)
        bn_eps = disc.get_submodule(disc.bn_names[0]).eps
        gamma = torch.stack([state[f"{name}.weight"] for name in disc.bn_names], -2)
        beta = torch.stack([state[f"{name}.bias"] for name in disc.bn_names], -2)
        tensors = (hidden[..., 0, :, :] @ first, hidden, gamma, beta, bn_eps * scale.square(), last,
                   sigma_last.reciprocal(), state[f"{disc.conv_names[-1]}.bias"])
    if not grad:  # a parameter, and a view of one made under no_grad, still require grad: cut them off
        tensors = tuple(t.detach() for t in tensors)
    lead, batch = x.shape[:-4], x.shape[-4] // groups
    rows, cols = x.shape[-2] - D_RECEPTIVE_FIELD + 1, x.shape[-1] - D_RECEPTIVE_FIELD + 1
    patches = x.unfold(-2, D_RECEPTIVE_FIELD, 1).unfold(-2, D_RECEPTIVE_FIELD, 1)  # (..., N, C, r, c, 7, 7)
    patches = patches.movedim(-5, -3).reshape(*lead, -1, first.shape[-1])  # one row of taps per pixel
    out, means, variances = _Body.apply(patches, *tensors, groups)
    with torch.no_grad():
        _update_running_stats(disc, state, hidden, sigma_hidden, scale, means, variances, batch * rows * cols)
    return out.view(*lead, groups, batch, 1, rows, cols)


def _weights(disc: Discriminator, state: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The convolutions' weights as matrices: first (..., C, 3 * 49), hidden stacked (..., blocks,
    C, C), last (..., 1, C)."""
    weight = [state[f"{name}.parametrizations.weight.original"] for name in disc.conv_names]
    return weight[0].flatten(-3), torch.stack(weight[1:-1], -5).flatten(-3), weight[-1].flatten(-3)


def _spectral_norms(disc: Discriminator, state: Mapping[str, torch.Tensor], weights: tuple[torch.Tensor, ...],
                    groups: int) -> tuple[torch.Tensor, ...]:
    """Each convolution's sigma in each of ``groups`` successive calls (first (..., groups), hidden
    (..., blocks, groups), last (..., groups)), differentiable w.r.t. the weights as in torch's
    spectral norm (u and v constant); u and v are left as the last call leaves them. The hidden
    convolutions share a shape: they iterate as one batch."""
    sn = disc.get_submodule(disc.conv_names[0]).parametrizations.weight[0]
    u = [state[f"{name}.parametrizations.weight.0._u"] for name in disc.conv_names]
    v = [state[f"{name}.parametrizations.weight.0._v"] for name in disc.conv_names]
    starts = [(u[0], v[0]), (torch.stack(u[1:-1], -2), torch.stack(v[1:-1], -2)), (u[-1], v[-1])]
    sigmas, new_u, new_v = [], [], []
    for weight, (u0, v0) in zip(weights, starts):
        us, vs = _power_iterations(weight, u0, v0, groups, sn.n_power_iterations, sn.eps)
        sigmas.append(((us @ weight) * vs).sum(-1))
        new_u.append(us[..., -1, :])
        new_v.append(vs[..., -1, :])
    with torch.no_grad():
        torch._foreach_copy_(u + v, [new_u[0], *new_u[1].unbind(-2), new_u[2], new_v[0], *new_v[1].unbind(-2), new_v[2]])
    return tuple(sigmas)


@torch.no_grad()
def _power_iterations(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, calls: int, steps: int,
                      eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's spectral-norm power iteration, ``steps`` per call, over ``calls`` successive calls
    from (u, v): u and v as each call leaves them, stacked along dim -2."""
    us, vs = [], []
    for _ in range(calls):
        for _ in range(steps):
            u = _normalize((weight @ v.unsqueeze(-1)).squeeze(-1), eps)
            v = _normalize((u.unsqueeze(-2) @ weight).squeeze(-2), eps)
        us.append(u)
        vs.append(v)
    return torch.stack(us, -2), torch.stack(vs, -2)


def _normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.normalize`` along the last dimension, one operation fewer."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min_(eps)


def _update_running_stats(disc: Discriminator, state: Mapping[str, torch.Tensor], hidden: torch.Tensor,
                          sigma_hidden: torch.Tensor, scale: torch.Tensor, means: torch.Tensor,
                          variances: torch.Tensor, pixels: int) -> None:
    """BatchNorm's running statistics after each call, in order, from the batch statistics of the
    matmul outputs (..., blocks, groups, C): the pre-BatchNorm activation is (matmul output) /
    scale + the biases' constant, and BatchNorm keeps the unbiased variance."""
    offset = torch.stack([state[f"{name}.bias"] for name in disc.conv_names[1:-1]], -2)[..., None, :]
    first_bias = state[f"{disc.conv_names[0]}.bias"]  # reaches block 0 through the second conv's W / sigma
    through = (hidden[..., 0, :, :] @ first_bias[..., None]).mT / sigma_hidden[..., 0, :, None]  # (..., groups, C)
    means = means / scale[..., None] + offset
    means[..., 0, :, :] += through
    variances = variances / scale[..., None].square() * (pixels / (pixels - 1))
    momentum = disc.get_submodule(disc.bn_names[0]).momentum
    running_means = [state[f"{name}.running_mean"] for name in disc.bn_names]
    running_vars = [state[f"{name}.running_var"] for name in disc.bn_names]
    for group in range(means.shape[-2]):
        torch._foreach_lerp_(running_means, list(means[..., group, :].unbind(-2)), momentum)
        torch._foreach_lerp_(running_vars, list(variances[..., group, :].unbind(-2)), momentum)
    torch._foreach_add_([state[f"{name}.num_batches_tracked"] for name in disc.bn_names], means.shape[-2])


class _Body(torch.autograd.Function):
    """Composed first convolution, ``blocks`` x [1x1 conv, BatchNorm (eps per call), ReLU], the
    last 1x1 conv scaled by 1 / sigma, bias, sigmoid: pixels as rows, calls as groups of rows.
    Returns the map (..., groups, pixels) and each block's batch mean and biased variance
    (..., blocks, groups, C) of its matmul output."""

    @staticmethod
    def forward(ctx, patches, first, hidden, gamma, beta, eps, last, inv_sigma, bias, groups):
        lead, blocks = patches.shape[:-2], hidden.shape[-3]
        # each block's tensors as views made at once, shaped to broadcast over (..., groups, pixels, C)
        hidden_t, gammas, betas, epss = (hidden.mT.unbind(-3), gamma[..., None, None, :].unbind(-4),
                                         beta[..., None, None, :].unbind(-4), eps[..., None, None].unbind(-4))
        inputs, normed, rstds, means, variances = [patches], [], [], [], []
        h = patches @ first.mT
        for block in range(blocks):
            if block:
                inputs.append(h)
                h = h @ hidden_t[block]
            h = h.view(*lead, groups, -1, h.shape[-1])
            mean = h.mean(-2, keepdim=True)
            h = h.sub_(mean)
            var = h.square().mean(-2, keepdim=True)
            rstd = (var + epss[block]).rsqrt_()
            h = h.mul_(rstd)
            normed.append(h)
            rstds.append(rstd)
            means.append(mean)
            variances.append(var)
            h = torch.addcmul(betas[block], h, gammas[block]).relu_()
            h = h.flatten(-3, -2)
        inputs.append(h)
        raw = (h @ last.mT).view(*lead, groups, -1)
        out = torch.addcmul(bias[..., None, :], raw, inv_sigma[..., None]).sigmoid_()
        ctx.save_for_backward(first, hidden, gamma, last, inv_sigma, raw, out, *inputs, *normed, *rstds)
        stats = torch.stack(means, -4)[..., 0, :], torch.stack(variances, -4)[..., 0, :]
        ctx.mark_non_differentiable(*stats)
        return out, *stats

    @staticmethod
    def backward(ctx, grad_out, _means, _variances):
        first, hidden, gamma, last, inv_sigma, raw, out, *rest = ctx.saved_tensors
        blocks = hidden.shape[-3]
        inputs, normed, rstds = rest[:blocks + 1], rest[blocks + 1:2 * blocks + 1], rest[2 * blocks + 1:]
        (needs_patches, needs_first, needs_hidden, needs_gamma, needs_beta, needs_eps, needs_last,
         needs_inv_sigma, needs_bias, _) = ctx.needs_input_grad
        lead = raw.shape[:-2]
        grad_raw = grad_out * (out - out.square())  # through the sigmoid
        grads: dict[str, torch.Tensor] = {}
        if needs_bias:
            grads["bias"] = grad_raw.sum((-2, -1))[..., None]
        if needs_inv_sigma:
            grads["inv_sigma"] = (grad_raw * raw).sum(-1)
        grad_raw = (grad_raw * inv_sigma[..., None]).view(*lead, -1, 1)
        if needs_last:
            grads["last"] = grad_raw.mT @ inputs[-1]
        grad = grad_raw * last  # (..., pixels, C)
        hiddens, gammas = hidden.unbind(-3), gamma[..., None, None, :].unbind(-4)
        grad_hidden, grad_gamma, grad_beta, grad_eps = [], [], [], []
        for block in reversed(range(blocks)):
            x_hat, rstd = normed[block], rstds[block]
            activation = inputs[block + 1].view_as(x_hat)
            grad = torch.ops.aten.threshold_backward(grad.view_as(x_hat), activation, 0)  # through the ReLU
            sum_grad = grad.sum(-2, keepdim=True)  # (..., groups, 1, C): beta's gradient per call
            sum_grad_x_hat = (grad * x_hat).sum(-2, keepdim=True)  # gamma's gradient per call
            gain = gammas[block] * rstd
            if needs_beta:  # D's own tensors: not in a generator step
                grad_beta.append(sum_grad.sum((-3, -2)))
            if needs_gamma:
                grad_gamma.append(sum_grad_x_hat.sum((-3, -2)))
            if needs_eps:
                grad_eps.append((gain * rstd * sum_grad_x_hat).sum((-2, -1)) * -0.5)
            # gain * (grad - mean(grad) - x_hat * mean(grad * x_hat)), in two passes
            shift = gain / -x_hat.shape[-2]
            grad = torch.addcmul(shift * sum_grad, x_hat, shift * sum_grad_x_hat).addcmul_(grad, gain)
            grad = grad.flatten(-3, -2)
            if block:
                if needs_hidden:
                    grad_hidden.append(grad.mT @ inputs[block])
                grad = grad @ hiddens[block]
            else:
                if needs_first:
                    grads["first"] = grad.mT @ inputs[0]
                if needs_patches:
                    grads["patches"] = grad @ first
        if needs_hidden:
            grads["hidden"] = torch.stack([torch.zeros_like(hidden[..., 0, :, :]), *reversed(grad_hidden)], -3)
        if needs_gamma:
            grads["gamma"] = torch.stack(grad_gamma[::-1], -2)
        if needs_beta:
            grads["beta"] = torch.stack(grad_beta[::-1], -2)
        if needs_eps:
            grads["eps"] = torch.stack(grad_eps[::-1], -2)
        names = ("patches", "first", "hidden", "gamma", "beta", "eps", "last", "inv_sigma", "bias")
        return (*(grads.get(name) for name in names), None)
