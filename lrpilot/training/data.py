"""In-memory splits and seeded minibatch iteration.

Every built-in task keeps its data as tensors (images as uint8, text as token ids),
moved to the training device once. Minibatches come from a ``torch.randperm`` drawn
from the session's own generator, so the data order is part of the session's state
and a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch

__all__ = ["TensorSplit", "DataSplits", "Inputs", "iter_batches", "fixed_split_indices"]

Inputs = torch.Tensor | dict[str, torch.Tensor]
"""A model's inputs: one tensor, or keyword tensors (``input_ids``, ``attention_mask``)."""


def _index(inputs: Inputs, idx: torch.Tensor) -> Inputs:
    if isinstance(inputs, dict):
        return {k: v[idx] for k, v in inputs.items()}
    return inputs[idx]


def _to(inputs: Inputs, device: torch.device) -> Inputs:
    if isinstance(inputs, dict):
        return {k: v.to(device) for k, v in inputs.items()}
    return inputs.to(device)


@dataclass
class TensorSplit:
    """One split: inputs (a tensor or a dict of tensors, first dim = examples) and labels."""

    inputs: Inputs
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: torch.Tensor) -> "TensorSplit":
        return TensorSplit(_index(self.inputs, idx), self.labels[idx])

    def to(self, device: torch.device) -> "TensorSplit":
        return TensorSplit(_to(self.inputs, device), self.labels.to(device))


def _identity(inputs: Inputs, generator: torch.Generator | None) -> Inputs:
    return inputs


@dataclass
class DataSplits:
    """Fixed train / val / test splits plus how to turn stored inputs into model inputs.

    ``train_transform(inputs, generator)`` runs on every training minibatch (augmentation,
    uint8 -> float, dynamic padding) drawing randomness only from ``generator`` (a CPU
    generator owned by the session); ``eval_transform(inputs, None)`` runs on
    validation and test minibatches.
    """

    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    num_classes: int
    train_transform: Callable[[Inputs, torch.Generator | None], Inputs] = _identity
    eval_transform: Callable[[Inputs, torch.Generator | None], Inputs] = _identity
    meta: Mapping[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> TensorSplit:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        return getattr(self, name)

    def to(self, device: torch.device) -> "DataSplits":
        return DataSplits(self.train.to(device), self.val.to(device), self.test.to(device), self.num_classes,
                          self.train_transform, self.eval_transform, self.meta)


def iter_batches(
    split: TensorSplit, batch_size: int, generator: torch.Generator | None = None, *, limit: int | None = None
) -> Iterator[tuple[Inputs, torch.Tensor]]:
    """Minibatches of ``split``: shuffled with ``generator`` when given, in order otherwise.

    ``limit`` caps the number of examples per pass (an "epoch" of a fixed size).
    """
    n = len(split)
    device = split.labels.device
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    if limit is not None:
        order = order[: min(limit, n)]
    order = order.to(device)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield _index(split.inputs, idx), split.labels[idx]


def fixed_split_indices(n: int, held_out: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed (seed-independent by default) partition of ``range(n)`` into (kept, held_out)."""
    if not 0 < held_out < n:
        raise ValueError(f"held_out must be in (0, {n}), got {held_out}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[held_out:].sort().values, perm[:held_out].sort().values
