"""`EpochMetrics`: the one record every part of lrpilot speaks.

A training run produces one per epoch; controllers read them; the environment puts
them in ``info``; the result store writes them as JSON lines. This module imports
nothing heavy, so deployment code can use it with only the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

__all__ = ["EpochMetrics", "METRIC_NAMES", "OPTIONAL_METRICS", "weight_change"]


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
    elapsed_epochs: float | None = None
    """With control intervals shorter than an epoch: the budget spent when these metrics were
    measured, in epochs: decisions taken / decisions per epoch (0.25, 0.5, ... at ``interval=0.25``;
    undone intervals count). For ``Nsteps`` intervals whose last one in an epoch is shorter this is
    not the share of the epoch's batches seen. ``epoch`` is then the 1-based index of the *interval*.
    None for a per-epoch run, where it equals ``epoch``."""
    val_top_share: float | None = None
    """Share of the validation examples predicted as the most predicted class (1.0: every
    prediction is the same class). None where not measured."""
    val_majority_share: float | None = None
    """Share of the validation examples in the most common true class (what always predicting it
    scores). None where not measured."""
    val_chance_loss: float | None = None
    """Cross-entropy of the best input-independent prediction on the validation split (the entropy
    of its label distribution): the loss of a model that has stopped discriminating."""
    val_spread: float | None = None
    """How much the model's output depends on its input: the standard deviation over validation
    examples of the predicted log-probabilities, averaged over classes (0: the same output for every
    input). None where not measured."""
    val_spread_start: float | None = None
    """``val_spread`` of the model before any training, the reference against which a collapse (the
    spread falling far below it) is judged; measured by runs that can undo, None elsewhere."""
    weight_change: float | None = None
    """How far the interval moved the model: the norm of the change of all parameters over their norm at
    the interval's start (0.0006, 0.0057 and 0.053 for a pretrained MiniLM's first epoch under Adam at LR
    1e-5, 1e-4 and 1e-3). Measured by runs that can undo (they keep the interval's start), None elsewhere."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; non-finite floats become None (JSON has no NaN). ``undone`` appears
        only when True and the optional fields (:data:`OPTIONAL_METRICS`) only when measured, so the
        records of per-epoch runs that never undo are those of earlier versions."""
        out = {name: getattr(self, name) for name in METRIC_NAMES}  # all scalars: as asdict(), faster
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        if not self.undone:
            del out["undone"]
        for key in OPTIONAL_METRICS:
            if out[key] is None:
                del out[key]
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
            elif f.name == "val_acc" or f.name in OPTIONAL_METRICS:
                kwargs[f.name] = None if value is None else float(value)
            else:
                kwargs[f.name] = math.nan if value is None else float(value)
        return cls(**kwargs)


METRIC_NAMES: tuple[str, ...] = tuple(f.name for f in fields(EpochMetrics))

OPTIONAL_METRICS: tuple[str, ...] = ("elapsed_epochs", "val_top_share", "val_majority_share", "val_chance_loss",
                                     "val_spread", "val_spread_start", "weight_change")
"""Fields written only when measured (None otherwise): interval position and the collapse evidence."""


def weight_change(model: Any, start: Mapping[str, Any]) -> float | None:
    """:attr:`EpochMetrics.weight_change` of ``model`` (a ``torch.nn.Module``) since ``start`` (a ``state_dict`` of
    it, as the snapshots behind undo keep): the norm of the change of all parameters over the norm of their values
    in ``start`` (each parameter's norm in float32 or its own wider precision, the sums in double). None when
    ``start`` lacks a parameter or has another shape, a value is not finite, or the start's norm is 0. Uses only
    tensor methods, so this module still imports no torch. Cost: one pass over the weights (ResNet-18 on the 2-core
    CPU: about 9 ms, docs/performance.md)."""
    moved: Any = 0.0
    size: Any = 0.0
    for name, param in model.named_parameters():
        before = start.get(name)
        if before is None or tuple(before.shape) != tuple(param.shape):
            return None
        before = before.to(param.device)
        diff = param.detach() - before
        if diff.element_size() < 4:  # half precision: its norm would lose digits (and may overflow)
            diff, before = diff.float(), before.float()
        # float32 norms (pairwise reductions: about 1e-7 relative), summed in double on the model's device
        moved = moved + diff.norm().double().square()
        size = size + before.norm().double().square()
    moved, size = float(moved), float(size)  # one transfer, not one per parameter
    change = math.sqrt(moved / size) if size > 0 else math.nan
    return change if math.isfinite(change) else None
