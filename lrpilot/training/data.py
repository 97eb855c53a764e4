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

__all__ = ["TensorSplit", "DataSplits", "Inputs", "iter_batches", "fixed_split_indices", "sequence_lengths",
           "length_grouped_order", "GROUP_CHUNK_BATCHES", "epoch_order", "batches_of"]

GROUP_CHUNK_BATCHES = 100
"""Batches per chunk that :func:`length_grouped_order` sorts by length (as Hugging Face's ``group_by_length``)."""

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

    ``meta`` carries hints for the session: ``channels_last`` (convert the model on CUDA),
    ``compile`` (``torch.compile`` pays on CUDA) and ``group_by_length`` (batch sequences of
    similar length together, see :func:`length_grouped_order`).
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
    split: TensorSplit, batch_size: int, generator: torch.Generator | None = None, *, limit: int | None = None,
    lengths: torch.Tensor | None = None,
) -> Iterator[tuple[Inputs, torch.Tensor]]:
    """Minibatches of ``split``: shuffled with ``generator`` when given, in order otherwise.

    ``limit`` caps the number of examples per pass (an "epoch" of a fixed size). With
    ``lengths`` (one per example, on the CPU) the shuffled batches group examples of similar
    length (:func:`length_grouped_order`) and the unshuffled ones go longest first, so
    dynamic padding trims more; every example still comes exactly once per pass.
    """
    order = epoch_order(split, batch_size, generator, limit=limit, lengths=lengths)
    yield from batches_of(split, order, batch_size)


def epoch_order(
    split: TensorSplit, batch_size: int, generator: torch.Generator | None = None, *, limit: int | None = None,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """The order of the examples :func:`iter_batches` visits in one pass (a CPU int64 tensor), drawing
    from ``generator`` exactly as it does; :func:`batches_of` then cuts it into minibatches. A run that
    stops mid-epoch keeps this order to go on where it stopped."""
    n = len(split)
    if lengths is not None and generator is not None:
        order = length_grouped_order(lengths, batch_size, generator, limit=limit)
    elif lengths is not None:
        order = torch.argsort(lengths, descending=True, stable=True)
    else:
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    if limit is not None:
        order = order[: min(limit, n)]
    return order


def batches_of(
    split: TensorSplit, order: torch.Tensor, batch_size: int, start: int = 0, stop: int | None = None,
) -> Iterator[tuple[Inputs, torch.Tensor]]:
    """Minibatches ``start`` to ``stop`` (batch indices, ``stop`` exclusive; None: to the end) of ``order``."""
    device = split.labels.device
    order = order.to(device)
    total = -(-len(order) // batch_size)
    for b in range(start, total if stop is None else min(stop, total)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        yield _index(split.inputs, idx), split.labels[idx]


def length_grouped_order(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator, *, limit: int | None = None,
    chunk_batches: int = GROUP_CHUNK_BATCHES,
) -> torch.Tensor:
    """A random order of the examples in which each run of ``batch_size`` has similar lengths.

    A random permutation (capped at ``limit`` examples, as :func:`iter_batches` caps it) is cut
    into chunks of ``chunk_batches * batch_size`` examples (a remainder under half a chunk joins
    the chunk before it), each chunk is sorted by length (longest first, stable) and cut into
    batches, and the order of the full batches is shuffled; a short batch (the shortest
    examples of the last chunk) comes last. All randomness comes from ``generator``, so the
    order is part of the caller's state and a resumed run repeats it.

    Example:
        >>> order = length_grouped_order(torch.tensor([5, 60, 7, 58]), 2, torch.Generator().manual_seed(0))
        >>> sorted(order.tolist())
        [0, 1, 2, 3]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(chunk_batches, bool) or not isinstance(chunk_batches, int) or chunk_batches < 1:
        raise ValueError(f"chunk_batches must be an integer >= 1, got {chunk_batches!r}")
    if lengths.dim() != 1 or lengths.device.type != "cpu":
        raise ValueError(f"lengths must be a 1-D CPU tensor, got shape {tuple(lengths.shape)} on {lengths.device}")
    order = torch.randperm(len(lengths), generator=generator)
    if limit is not None:
        order = order[: min(limit, len(order))]
    chunks = list(order.split(chunk_batches * batch_size))
    if len(chunks) > 1 and 2 * len(chunks[-1]) < len(chunks[0]):  # a small remainder joins the chunk before it
        chunks[-2:] = [torch.cat(chunks[-2:])]
    pieces = [idx[torch.argsort(lengths[idx], descending=True, stable=True)] for idx in chunks]
    batches = torch.cat(pieces).split(batch_size) if pieces else ()
    full = len(order) // batch_size  # the short batch, if any, stays last so that runs of batch_size stay batches
    shuffled = torch.randperm(full, generator=generator).tolist() + list(range(full, len(batches)))
    return torch.cat([batches[i] for i in shuffled]) if batches else order


def sequence_lengths(split: TensorSplit) -> torch.Tensor:
    """Tokens per example (the ``attention_mask`` row sums) of a text split, as an int64 CPU tensor."""
    if not isinstance(split.inputs, dict) or "attention_mask" not in split.inputs:
        got = sorted(split.inputs) if isinstance(split.inputs, dict) else type(split.inputs).__name__
        raise ValueError(f"grouping by length needs inputs with an attention_mask, got {got}")
    return split.inputs["attention_mask"].sum(dim=1, dtype=torch.int64).cpu()


def fixed_split_indices(n: int, held_out: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed (seed-independent by default) partition of ``range(n)`` into (kept, held_out)."""
    if not 0 < held_out < n:
        raise ValueError(f"held_out must be in (0, {n}), got {held_out}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[held_out:].sort().values, perm[:held_out].sort().values
