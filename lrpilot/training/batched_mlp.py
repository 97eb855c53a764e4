"""A batched forward pass for plain MLPs, the population's fast path.

``torch.vmap`` over ``functional_call`` runs any model, but for the small MLPs that most
population tasks train its batching of ``linear`` costs several times a plain batched
matrix product (measured: docs/population.md). A model that is an ``nn.Sequential`` of
``Flatten`` (first only), ``Linear`` and ``ReLU`` (each right after a ``Linear``, since it
runs in place on that product's output) is therefore run as ``baddbmm`` products over the
members' stacked weights, which computes the same function (each member's rows are an
ordinary ``x @ W.T + b``).

Example:
    >>> plan = mlp_plan(nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    >>> plan
    [('flatten',), ('linear', '1.weight', '1.bias'), ('relu',), ('linear', '3.weight', '3.bias')]
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["mlp_plan", "mlp_forward"]

Plan = list[tuple[str, ...]]


def mlp_plan(model: nn.Module) -> Plan | None:
    """The layers of ``model`` if it is a plain MLP (``Flatten``?, then ``Linear``, each maybe followed
    by one ``ReLU``), else None."""
    if type(model) is not nn.Sequential:
        return None
    plan: Plan = []
    for i, (name, layer) in enumerate(model.named_children()):
        if type(layer) is nn.Flatten and i == 0 and layer.start_dim == 1 and layer.end_dim == -1:
            plan.append(("flatten",))
        elif type(layer) is nn.Linear:
            plan.append(("linear", f"{name}.weight", f"{name}.bias" if layer.bias is not None else ""))
        elif type(layer) is nn.ReLU and plan and plan[-1][0] == "linear":  # never in place on the inputs
            plan.append(("relu",))
        else:
            return None
    return plan if any(step[0] == "linear" for step in plan) else None


def mlp_forward(plan: Plan, params: dict[str, torch.Tensor], inputs: torch.Tensor, shared: bool) -> torch.Tensor:
    """Outputs ``[k, B, C]`` of the ``k`` members whose weights are ``params`` (each ``[k, ...]``).

    ``inputs`` is ``[k, B, ...]`` (each member its own batch) or, with ``shared``, ``[B, ...]``.
    """
    x = inputs
    for step in plan:
        kind = step[0]
        if kind == "flatten":
            x = x.flatten(1 if shared else 2)
        elif kind == "relu":
            x = x.relu_()  # in place on a product's fresh output (as nn.ReLU(inplace=True)); autograd allows it
        else:
            weight = params[step[1]].transpose(1, 2)  # [k, in, out]
            if shared:  # the first layer on a batch that every member shares: a stride-0 view, no copy
                x, shared = x.expand(weight.shape[0], *x.shape), False
            if step[2]:
                x = torch.baddbmm(params[step[2]].unsqueeze(1), x, weight)
            else:
                x = torch.bmm(x, weight)
    return x
