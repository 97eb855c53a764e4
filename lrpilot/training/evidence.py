"""The evidence of a collapse that every validation reports (see :class:`~lrpilot.metrics.EpochMetrics`):
how concentrated the predictions are, what a constant prediction scores, and how much the output
depends on the input. ``lrpilot.integrations.evidence`` computes the same from a deployed loop's logits
(the integrations layer may not import this package)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["EvidenceAccumulator", "label_statistics"]


class EvidenceAccumulator:
    """Streams a split's logits batch by batch; :meth:`result` gives ``top_share`` (share of the
    predictions in the most predicted class) and ``spread`` (standard deviation over examples of the
    predicted log-probabilities, averaged over classes: 0 when every input gets the same output)."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.predicted = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.logp_sum = torch.zeros(num_classes, dtype=torch.float64, device=device)
        self.logp_sq = torch.zeros(num_classes, dtype=torch.float64, device=device)

    def add(self, logits: torch.Tensor, guess: torch.Tensor) -> None:
        """One batch: its float logits and their argmax."""
        self.predicted += torch.bincount(guess, minlength=self.num_classes)[: self.num_classes]
        logp = F.log_softmax(logits, dim=-1).double()
        self.logp_sum += logp.sum(0)
        self.logp_sq += logp.square().sum(0)

    def result(self, n: int) -> dict[str, float | None]:
        mean = self.logp_sum / n
        spread = float((self.logp_sq / n - mean.square()).clamp_min(0).sqrt().mean())
        return {"top_share": float(self.predicted.max()) / n, "spread": spread if math.isfinite(spread) else None}


def label_statistics(labels: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """The share of the most common label and the entropy of the labels (nats): what always predicting
    the majority class scores, and the loss of the best input-independent prediction."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()
    p = counts[counts > 0] / counts.sum()
    return float(p.max()), float(-(p * p.log()).sum())
