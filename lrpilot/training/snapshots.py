"""The in-memory snapshots behind undo, shared by :class:`~lrpilot.training.TrainingSession` and the
population trainer: cloning nested state, choosing where a copy lives, and checking an undo's LR cut."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["cloned", "snapshot", "check_lr_factor", "UNDO_LR_FACTOR"]


def cloned(state: Any, device: torch.device | None = None) -> Any:
    """A copy of nested dicts and lists whose tensors are cloned (to ``device`` when given; ``copy.deepcopy``
    takes about 1.6x as long on a ResNet-18 + Adam state, and this runs at the start of every interval
    with ``undo=True``)."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone() if device is None else state.detach().to(device, copy=True)
    if isinstance(state, dict):
        return {key: cloned(value, device) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(cloned(value, device) for value in state)
    return state


def _tensors(state: Any) -> list[torch.Tensor]:
    """Every tensor in nested dicts and lists."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for value in state.values() for t in _tensors(value)]
    if isinstance(state, (list, tuple)):
        return [t for value in state for t in _tensors(value)]
    return []


def snapshot(state: Any, device: torch.device) -> Any:
    """:func:`cloned` ``state`` of a run on ``device``, kept in host memory when the GPU has less than
    twice its size free (the copy must not take the memory the training needs)."""
    if device.type != "cuda":
        return cloned(state)
    size = sum(t.numel() * t.element_size() for t in _tensors(state))
    free, _ = torch.cuda.mem_get_info(device)
    return cloned(state, torch.device("cpu") if free < 2 * size else None)


UNDO_LR_FACTOR = 0.1
"""What an undo multiplies the LR by, unless told otherwise (``TrainingSession.undo``, the population's,
the environments', the deployed forms').
"""


def check_lr_factor(lr_factor: Any) -> float:
    """``lr_factor`` of an undo as a float; ValueError unless it is a finite number > 0."""
    if isinstance(lr_factor, bool) or not isinstance(lr_factor, (int, float)) or not (
            math.isfinite(lr_factor) and lr_factor > 0):
        raise ValueError(f"lr_factor must be a finite number > 0, got {lr_factor!r}")
    return float(lr_factor)
