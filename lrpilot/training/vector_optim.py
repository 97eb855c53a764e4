"""Adam, AdamW and SGD with momentum, written functionally over a population's stacked parameters.

Parameters, gradients and every state tensor have a leading member dimension ``P``
(``[P, N]`` for the flattened parameters); the learning rate and the step count are
``[P]`` tensors, so every member has its own LR and its own bias correction (members
restart at different times). The arithmetic follows ``torch.optim``'s single-tensor
implementations step by step (bias corrections in double precision, the same order of
operations), so a member matches a plain ``torch.optim`` run to float rounding.

Example:
    >>> params, grads = torch.zeros(2, 3), torch.ones(2, 3)
    >>> state = init_state("adam", params)
    >>> optimizer_step("adam", params, grads, state, torch.tensor([1e-3, 1e-2], dtype=torch.float64))
"""

from __future__ import annotations

import torch

__all__ = ["VECTOR_OPTIMIZERS", "init_state", "optimizer_step", "BETAS", "EPS", "MOMENTUM"]

VECTOR_OPTIMIZERS = ("adam", "adamw", "sgd")
"""Optimisers a population can train with (``sgd`` has momentum :data:`MOMENTUM`)."""
BETAS = (0.9, 0.999)
"""Adam's and AdamW's betas (``torch.optim`` defaults)."""
EPS = 1e-8
"""Adam's and AdamW's epsilon (``torch.optim`` default)."""
MOMENTUM = 0.9
"""SGD's momentum (as :func:`lrpilot.training.optim.build_optimizer` uses)."""


def _check(name: str) -> None:
    if name not in VECTOR_OPTIMIZERS:
        raise ValueError(f"population optimizer must be one of {', '.join(VECTOR_OPTIMIZERS)}, got {name!r}")


def init_state(name: str, params: torch.Tensor) -> dict[str, torch.Tensor]:
    """Zero optimiser state for ``params`` (``[P, N]``); ``step`` counts per member."""
    _check(name)
    state = {"step": torch.zeros(params.shape[0], dtype=torch.float64, device=params.device)}
    if name == "sgd":
        state["momentum_buffer"] = torch.zeros_like(params)
    else:
        state["exp_avg"] = torch.zeros_like(params)
        state["exp_avg_sq"] = torch.zeros_like(params)
    return state


def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``[P]`` double tensor as a ``[P, 1, ...]`` tensor of ``like``'s dtype, for broadcasting."""
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def optimizer_step(name: str, params: torch.Tensor, grads: torch.Tensor, state: dict[str, torch.Tensor],
                   lr: torch.Tensor, weight_decay: float = 0.0) -> None:
    """One update of every member, in place: ``params``, ``state`` change; ``lr`` is ``[P]`` (double).

    A momentum buffer that starts at zero gives exactly ``torch.optim.SGD``'s first step
    (which copies the gradient), so a member reset to zero state restarts correctly.
    """
    _check(name)
    state["step"] += 1
    if name == "sgd":
        if weight_decay:
            grads = grads.add(params, alpha=weight_decay)
        buf = state["momentum_buffer"]
        buf.mul_(MOMENTUM).add_(grads)
        params.sub_(buf * _column(lr, params))
        return
    beta1, beta2 = BETAS
    if name == "adamw" and weight_decay:
        params.mul_(_column(1.0 - lr * weight_decay, params))
    elif weight_decay:
        grads = grads.add(params, alpha=weight_decay)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg.lerp_(grads, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grads, grads, value=1 - beta2)
    step = state["step"]
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step).sqrt()
    step_size = lr / bias_correction1
    denom = (exp_avg_sq.sqrt() / _column(bias_correction2_sqrt, params)).add_(EPS)
    params.sub_(exp_avg.div(denom).mul_(_column(step_size, params)))
