"""The collapse evidence ``X+guard`` reads, computed from a validation pass in a deployed loop.

A training session measures it itself; a deployed loop (``PolicyScheduler``, the Hugging Face and
Lightning callbacks) passes it with the losses, or ``+guard`` can judge divergence only::

    from lrpilot.integrations.evidence import collapse_evidence
    evidence = collapse_evidence(val_logits, val_labels)            # once per validation
    scheduler.step({"val_loss": val_loss, "val_acc": val_acc, **evidence})

With the Hugging Face ``Trainer``, return ``collapse_evidence(logits, labels)`` from
``compute_metrics`` (the ``eval_`` prefix it adds is understood). Pass the same keys measured on the
untrained model once, as ``val_spread_start=...``, to give the guard its reference (without it, the
guard's absolute fallback applies; docs/controller.md, "The guard").
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["collapse_evidence", "EVIDENCE_METRICS"]

EVIDENCE_METRICS: tuple[str, ...] = ("val_top_share", "val_majority_share", "val_chance_loss", "val_spread",
                                     "val_spread_start")
"""The metric names of the evidence, as ``PolicyScheduler.step`` takes them."""


@torch.no_grad()
def collapse_evidence(logits: Any, labels: Any, num_classes: int | None = None) -> dict[str, float]:
    """``val_top_share``, ``val_majority_share``, ``val_chance_loss`` and ``val_spread`` of a validation pass.

    ``logits``: (examples, classes) tensor or array; ``labels``: (examples,) integer class ids. The same
    definitions as ``TrainingSession.evaluate`` (see :class:`~lrpilot.metrics.EpochMetrics`).

    Example:
        >>> e = collapse_evidence(torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1]))
        >>> e["val_top_share"], e["val_majority_share"], round(e["val_spread"], 6)
        (1.0, 0.5, 0.0)
    """
    logits = torch.as_tensor(logits).detach().float().cpu()
    labels = torch.as_tensor(labels).detach().long().cpu().reshape(-1)
    if logits.dim() != 2 or logits.shape[0] != labels.shape[0] or logits.shape[0] == 0:
        raise ValueError(f"logits must be (examples, classes) and labels (examples,), got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    classes = num_classes or logits.shape[1]
    n = logits.shape[0]
    predicted = torch.bincount(logits.argmax(dim=1), minlength=classes)
    counts = torch.bincount(labels, minlength=classes).double()
    p = counts[counts > 0] / n
    logp = torch.log_softmax(logits.double(), dim=1)
    spread = float(logp.std(dim=0, unbiased=False).mean())
    return {"val_top_share": float(predicted.max()) / n, "val_majority_share": float(p.max()),
            "val_chance_loss": float(-(p * p.log()).sum()), "val_spread": spread if math.isfinite(spread) else math.nan}
