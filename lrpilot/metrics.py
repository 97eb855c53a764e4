"""`EpochMetrics`: the one record every part of lrpilot speaks.

A training run produces one per epoch; controllers read them; the environment puts
them in ``info``; the result store writes them as JSON lines. This module imports
nothing heavy, so deployment code can use it with only the standard library.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

__all__ = ["EpochMetrics", "METRIC_NAMES"]


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch of training reports. Test metrics never appear here."""

    epoch: int
    """1-based index of the epoch these metrics describe."""
    lr: float
    """Learning rate (of the first parameter group) used during the epoch."""
    train_loss: float
    """Mean minibatch training loss over the epoch."""
    train_loss_std: float = 0.0
    """Standard deviation of the minibatch training losses within the epoch."""
    val_loss: float = math.nan
    """Validation loss after the epoch."""
    val_acc: float | None = None
    """Validation accuracy in [0, 1] after the epoch; None for tasks without accuracy."""
    grad_norm: float = math.nan
    """Mean global gradient norm over the epoch's minibatches."""
    seconds: float = 0.0
    """Wall time of the epoch (training and validation)."""
    diverged: bool = False
    """True when the loss or the weights became non-finite, or the loss exploded."""
    undone: bool = False
    """True when the run was rewound to the start of this epoch afterwards (see
    ``TrainingSession.undo``): the epoch was trained and counts against the budget, but its
    weights were discarded."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; non-finite floats become None (JSON has no NaN). ``undone`` appears
        only when True, so the records of runs that never undo are those of earlier versions."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        if not self.undone:
            del out["undone"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EpochMetrics":
        """Inverse of :meth:`to_dict`; unknown keys are rejected, None floats become NaN."""
        unknown = set(data) - set(METRIC_NAMES)
        if unknown:
            raise ValueError(f"unknown EpochMetrics field(s) {sorted(unknown)}; allowed: {list(METRIC_NAMES)}")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name in ("epoch",):
                kwargs[f.name] = int(value)
            elif f.name in ("diverged", "undone"):
                kwargs[f.name] = bool(value)
            elif f.name == "val_acc":
                kwargs[f.name] = None if value is None else float(value)
            else:
                kwargs[f.name] = math.nan if value is None else float(value)
        return cls(**kwargs)


METRIC_NAMES: tuple[str, ...] = tuple(f.name for f in fields(EpochMetrics))
