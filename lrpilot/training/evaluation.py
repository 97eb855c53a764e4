"""Evaluating a model on a split: loss, accuracy and the evidence of a collapse, without gradients or randomness.

:class:`~lrpilot.training.session.TrainingSession` evaluates through :func:`evaluate_split`; with a Schedule-Free
optimiser, :func:`refresh_batchnorm` first recomputes BatchNorm statistics at the averaged weights it evaluates.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from lrpilot.training.data import DataSplits, Inputs, iter_batches
from lrpilot.training.devices import autocast
from lrpilot.training.evidence import EvidenceAccumulator
from lrpilot.training.optim import is_schedule_free, optimizer_mode
from lrpilot.training.task import Task

__all__ = ["forward", "evaluate_split", "refresh_batchnorm"]


def forward(model: torch.nn.Module, inputs: Inputs) -> torch.Tensor:
    """Logits for a batch: ``model(x)`` for a tensor, ``model(**x)`` for keyword inputs."""
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


@torch.no_grad()
def evaluate_split(model: torch.nn.Module, optimizer: torch.optim.Optimizer, task: Task, data: DataSplits,
                   split: str, device: torch.device, label_stats: tuple[float, float],
                   lengths: torch.Tensor | None = None) -> dict[str, Any]:
    """Mean loss and accuracy of ``model`` on ``split`` of ``data``; no gradients, no randomness.

    Also the evidence of a collapse (a model that no longer discriminates): ``top_share``, the
    share of predictions in the most predicted class; ``majority_share`` and ``chance_loss``
    (``label_stats``), the share of the most common label and the entropy of the labels (the loss of the best
    input-independent prediction); ``spread``, the standard deviation over examples of the
    predicted log-probabilities, averaged over classes (0 when every input gets the same output).
    ``lengths``: per-example sequence lengths, when the data asks for length-grouped batches.
    """
    part = data.split(split)
    optimizer_mode(optimizer, train=False)
    refresh_batchnorm(model, optimizer, task, data, device)
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    evidence = EvidenceAccumulator(data.num_classes, device)
    for inputs, labels in iter_batches(part, task.eval_batch_size, lengths=lengths):
        with autocast(device):
            logits = forward(model, data.eval_transform(inputs, None))
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
        guess = logits.argmax(dim=-1)
        correct += (guess == labels).sum()
        evidence.add(logits, guess)
    n = len(part)
    loss = float(loss_sum) / n
    majority, chance = label_stats
    return {"loss": loss if math.isfinite(loss) else math.nan, "acc": float(correct) / n,
            "majority_share": majority, "chance_loss": chance, **evidence.result(n)}


def refresh_batchnorm(model: torch.nn.Module, optimizer: torch.optim.Optimizer, task: Task, data: DataSplits,
                      device: torch.device, batches: int = 50) -> None:
    """Schedule-Free evaluates at averaged weights; as its README says, BatchNorm statistics
    must then be recomputed at those weights: a few training batches in train mode, no
    gradients, in a fixed order and without augmentation (no randomness consumed). The
    statistics are recomputed from scratch as an exact average, so evaluation is repeatable.
    Does nothing for other optimisers or models without BatchNorm."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not is_schedule_free(optimizer):
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the refresh batches
    model.train()
    with torch.no_grad():
        for i, (inputs, _) in enumerate(iter_batches(data.train, task.batch_size)):
            if i == batches:
                break
            with autocast(device):
                forward(model, data.eval_transform(inputs, None))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
