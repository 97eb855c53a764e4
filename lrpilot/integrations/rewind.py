"""Undo in the deployed forms: an in-memory copy of the model and its optimizers, restored in place.

:class:`PolicyScheduler` (with ``model=``) and the Hugging Face and Lightning callbacks keep one
:class:`IntervalSnapshot`, taken at the start of every control interval; when the controller answers
:data:`~lrpilot.controller.base.UNDO` they restore it and cut the learning rate. Only the model's and
the optimizers' ``state_dict`` are rewound: the caller's data loader position, a ``GradScaler``, EMA
weights and anything else outside them go on (see docs/deploy.md, "Undo").

The training session has its own snapshot (with the RNG state, which a deployed form does not own);
the integrations layer may not import ``lrpilot.training``, and the two copies differ in what they hold.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
from torch.optim import Optimizer

from lrpilot.controller.base import Controller, Undo
from lrpilot.metrics import weight_change

__all__ = ["IntervalSnapshot", "UndoIntrospection", "prepare_undo", "sharded_reason", "check_undo_factor", "snapshot_device", "optimizer_mode",
           "DEVICE_SHARE", "UNDO_LABEL"]

UNDO_LABEL = "undo"
"""How ``last_decision`` and ``get_last_action`` show an undo (a multiplier is shown as a float)."""

DEVICE_SHARE = 0.5
"""A snapshot of a model on a GPU stays on that GPU when it needs at most this share of the free
device memory (``torch.cuda.mem_get_info``), so the training's own peak still fits; otherwise it is
kept on the host (slower to take and restore, no GPU memory)."""


def prepare_undo(controller: Controller, *, can_rewind: bool, owner: str, why: str, warn: bool = True) -> bool:
    """Whether ``owner`` must keep snapshots for ``controller``.

    A controller that never undoes needs none. One that may undo needs them when ``can_rewind``;
    otherwise (``owner`` + ``why`` says why not) an optional undo (a learned policy's action) is
    masked, with one warning when ``warn``, and a controller whose purpose is to undo (``+guard``)
    is refused in one line.
    """
    if not controller.may_undo:
        return False
    if can_rewind:
        return True
    if not controller.undo_optional:
        raise ValueError(f"controller {controller.spec()!r} undoes, which rewinds the model, and {owner} {why}")
    controller.disable_undo()
    if warn:
        warnings.warn(f"{owner} {why}: controller {controller.spec()!r} will never undo", UserWarning, stacklevel=3)
    return False


def check_undo_factor(factor: float) -> float:
    """``factor`` as a float; ValueError unless 0 < factor <= 1 (an undo cuts the LR)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1:
        raise ValueError(f"undo_lr_factor must be a number in (0, 1], got {factor!r}")
    return float(factor)


def sharded_reason(model: torch.nn.Module | None, optimizers: Sequence[Any] = ()) -> str | None:
    """Why the model or an optimizer is sharded across processes (FSDP, FSDP2, DeepSpeed, ZeRO), or None.

    A snapshot of a sharded model would hold only this process's shard, and restoring it in place
    would need every process to agree; the deployed forms refuse undo there instead.
    """
    if model is not None:
        if "DeepSpeed" in type(model).__name__:
            return f"the model is a DeepSpeed engine ({type(model).__name__})"
        for module in model.modules():
            names = {cls.__name__ for cls in type(module).__mro__}
            if names & {"FullyShardedDataParallel", "FSDPModule"}:
                return f"the model is wrapped in torch FSDP ({type(module).__name__})"
        if any(type(p).__name__ == "DTensor" for p in model.parameters()):
            return "the model has DTensor (sharded) parameters"
    for optimizer in optimizers:
        name = type(optimizer).__name__
        if "DeepSpeed" in name or "ZeroRedundancy" in name:
            return f"the optimizer is sharded ({name})"
    return None


def _cloned(state: Any, device: torch.device | None, memo: dict[tuple[Any, ...], torch.Tensor]) -> Any:
    """Nested dicts, lists and tuples with every tensor copied (to ``device`` when given); the same
    memory seen twice (tied weights, under two names in a ``state_dict``) is copied once."""
    if isinstance(state, torch.Tensor):
        key = (state.untyped_storage().data_ptr(), state.storage_offset(), tuple(state.shape), state.stride(),
               state.dtype, state.device)
        if key not in memo:
            memo[key] = state.detach().to(device, copy=True) if device is not None else state.detach().clone()
        return memo[key]
    if isinstance(state, dict):
        return {key: _cloned(value, device, memo) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_cloned(value, device, memo) for value in state)
    return state


def _tensor_bytes(state: Any) -> int:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_tensor_bytes(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_tensor_bytes(value) for value in state)
    return 0


def snapshot_device(state: dict[str, Any], cuda_device: torch.device | None) -> torch.device | None:
    """Where to keep a copy of ``state``: None (beside the originals) unless they are on a GPU that
    would not hold the copy within :data:`DEVICE_SHARE` of its free memory; then the host."""
    if cuda_device is None:
        return None
    free, _total = torch.cuda.mem_get_info(cuda_device)
    return None if _tensor_bytes(state) <= DEVICE_SHARE * free else torch.device("cpu")


def optimizer_mode(optimizer: Any) -> bool | None:
    """True / False for a Schedule-Free optimizer (``train()`` / ``eval()`` methods) in train / eval
    mode; None for an optimizer without modes, or one whose mode cannot be read."""
    if not (callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))):
        return None
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    if "train_mode" in group:  # schedulefree.AdamWScheduleFree, SGDScheduleFree, RAdamScheduleFree
        return bool(group["train_mode"])
    flag = getattr(optimizer, "train_mode", None)  # schedulefree.ScheduleFreeWrapper
    return flag if isinstance(flag, bool) else None


def _set_mode(optimizer: Any, train: bool | None) -> None:
    if train is not None and optimizer_mode(optimizer) not in (None, train):
        (optimizer.train if train else optimizer.eval)()


class IntervalSnapshot:
    """A copy of a model's and its optimizers' state at the start of a control interval, restored in place.

    Args:
        model: the module whose ``state_dict`` is copied (parameters and buffers).
        optimizers: the optimizers over it (their state and param groups, LR included).

    A Schedule-Free optimizer is copied in the mode it is in, and restored in that mode before being
    put back in the mode it was in at the undo: switching modes to take the copy would move the
    weights by a rounding error at every interval. A copy of a model on a GPU stays on the GPU when it
    fits (:data:`DEVICE_SHARE` of the free memory), else it is kept on the host.

    Cost: one copy of the weights and buffers, plus the optimizer state (Adam: two more copies of
    the weights), taken at every :meth:`take`.
    """

    def __init__(self, model: torch.nn.Module, optimizers: Sequence[Optimizer]) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.optimizers = list(optimizers)
        self._snapshot: dict[str, Any] | None = None

    @property
    def ready(self) -> bool:
        """True when there is a snapshot to restore."""
        return self._snapshot is not None

    def take(self) -> None:
        """Copy the model and optimizers as they are now (the start of the next interval)."""
        self._snapshot = None  # free the old copy first: the new one may need its room
        state = {"model": self.model.state_dict(), "optimizers": [opt.state_dict() for opt in self.optimizers]}
        cuda = next((t.device for t in self.model.parameters() if t.is_cuda), None)
        copy = _cloned(state, snapshot_device(state, cuda), {})
        self._snapshot = {**copy, "modes": [optimizer_mode(opt) for opt in self.optimizers]}

    def restore(self) -> None:
        """Load the snapshot into the model and optimizers in place; the snapshot is used up (the
        optimizers now hold its tensors), so :meth:`take` again once the LR is cut."""
        if self._snapshot is None:
            raise RuntimeError("nothing to restore: no snapshot was taken since the last restore")
        snapshot, self._snapshot = self._snapshot, None
        modes_now = [optimizer_mode(opt) for opt in self.optimizers]
        for optimizer, mode in zip(self.optimizers, snapshot["modes"]):
            _set_mode(optimizer, mode)
        self.model.load_state_dict(snapshot["model"])
        for optimizer, state in zip(self.optimizers, snapshot["optimizers"]):
            optimizer.load_state_dict(state)
        for optimizer, mode in zip(self.optimizers, modes_now):
            _set_mode(optimizer, mode)

    def weight_change(self) -> float | None:
        """How far the model moved since :meth:`take` (``EpochMetrics.weight_change``); None without a snapshot."""
        return None if self._snapshot is None else weight_change(self.model, self._snapshot["model"])

    def state_dict(self) -> dict[str, Any] | None:
        """The snapshot (tensors, plain values; loads with ``torch.load(weights_only=True)``), or None."""
        return self._snapshot

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state_dict`; None (a state saved without a snapshot) takes one now."""
        if state is None:
            self.take()
            return
        if len(state["optimizers"]) != len(self.optimizers):
            raise ValueError(f"snapshot holds {len(state['optimizers'])} optimizer state(s), "
                             f"this run has {len(self.optimizers)} optimizer(s)")
        self._snapshot = {"model": state["model"], "optimizers": list(state["optimizers"]),
                          "modes": list(state.get("modes", [None] * len(self.optimizers)))}


class UndoIntrospection:
    """``undos`` and ``last_decision`` for the deployed forms, which set ``controller``, ``undone`` (the
    decisions undone, 1-based), ``_last_undo`` (whether the last answer was an undo), ``undo_lr_factor``
    and ``_snapshot``; :meth:`_carry_out` applies an answer."""

    controller: Controller
    undone: list[int]
    _last_undo: bool
    undo_lr_factor: float
    _snapshot: IntervalSnapshot | None

    def _with_weight_change(self, values: dict[str, float | None]) -> dict[str, float | None]:
        """``values`` with ``weight_change`` measured against the snapshot of the interval's start, when one is kept
        and the caller did not pass it (``+guard`` reads it on a model declared pretrained)."""
        if self._snapshot is None or not self._snapshot.ready or values.get("weight_change") is not None:
            return values
        return {**values, "weight_change": self._snapshot.weight_change()}

    def _carry_out(self, decision: float | Undo) -> float:
        """The LR multiplier for the controller's answer ``decision``; on an undo, first restore the model and
        optimizers to the interval's start and record the undo (the multiplier is then the cut)."""
        self._last_undo = isinstance(decision, Undo)
        if not isinstance(decision, Undo):
            return decision
        assert self._snapshot is not None  # act() answers an undo only while may_undo: a snapshot is kept
        self._snapshot.restore()
        self.undone.append(self.controller.epochs_seen)
        return decision.lr_factor(self.undo_lr_factor)

    @property
    def undos(self) -> int:
        """How many times the controller undid an interval."""
        return len(self.undone)

    @property
    def last_decision(self) -> float | str | None:
        """The controller's last answer: a multiplier, ``"undo"``, or None before the first."""
        if self.controller.epochs_seen == 0:
            return None
        return UNDO_LABEL if self._last_undo else self.controller.last_multiplier
