"""Initial weights of a population's members, and the check that a task's model fits a population.

Kept apart from :mod:`lrpilot.training.population_trainer` because it is a concept of its own:
what a member starts from (``task.build_model`` under the member's seed, exactly as a
:class:`~lrpilot.training.TrainingSession` builds it, and a faster equivalent that re-runs
``reset_parameters``), and which models a lockstep population can train at all (no buffers,
no dropout). :func:`cross_entropy` is the loss the population trains and evaluates with.
"""

from __future__ import annotations

import torch
from torch import nn

from lrpilot.training.data import DataSplits
from lrpilot.training.task import Task

__all__ = ["Initializer", "check_model", "cross_entropy", "seeded_model"]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-row mean cross-entropy over the second-to-last dim: ``[..., B, C], [..., B] -> [...]``.

    Equal to ``F.cross_entropy`` to float rounding; written out because PyTorch's CPU
    ``log_softmax`` is several times slower than this for the few classes of small tasks.
    """
    shifted = logits - logits.detach().amax(dim=-1, keepdim=True)
    log_norm = shifted.exp().sum(dim=-1).log()
    picked = shifted.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (log_norm - picked).mean(dim=-1)


def seeded_model(task: Task, data: DataSplits, seed: int) -> nn.Module:
    """``task.build_model`` under ``seed``, exactly as a TrainingSession initialises it; global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(torch.Generator().manual_seed(seed).get_state())
        return task.build_model(task, data)


class Initializer:
    """Initial weights of ``task``'s model under a seed, as a flat vector.

    Building the model (what a TrainingSession does) is the definition; re-running every
    submodule's ``reset_parameters`` in order on one kept instance gives the same numbers
    for models whose construction draws nothing else (checked once, here), several times
    faster, which matters because an environment restarts members every step.
    """

    def __init__(self, task: Task, data: DataSplits) -> None:
        self.task, self.data = task, data
        self.model = seeded_model(task, data, 0)
        self.resettable = [m for m in self.model.modules() if callable(getattr(m, "reset_parameters", None))]
        self.fast = torch.equal(self._rebuild(0), self._reinit(0)) and torch.equal(self._rebuild(1), self._reinit(1))

    def __call__(self, seed: int) -> torch.Tensor:
        return self._reinit(seed) if self.fast else self._rebuild(seed)

    def _rebuild(self, seed: int) -> torch.Tensor:
        model = seeded_model(self.task, self.data, seed)
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    @torch.no_grad()
    def _reinit(self, seed: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(torch.Generator().manual_seed(seed).get_state())
            for module in self.resettable:
                module.reset_parameters()
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])


def check_model(task: Task, model: nn.Module) -> None:
    """``ValueError`` unless ``model`` (``task``'s) has no buffers and no dropout, which a population cannot train."""
    buffers = [name for name, _ in model.named_buffers()]
    if buffers:
        raise ValueError(f"task {task.name!r}: a population trains models without buffers (no BatchNorm); "
                         f"this model has {buffers}")
    dropout = [name for name, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if dropout:
        raise ValueError(f"task {task.name!r}: a population trains models without dropout; this model has {dropout}")
