"""`PolicyScheduler`: any controller as an ordinary PyTorch learning-rate scheduler.

A controller (a rule, a classic schedule or a learned policy) answers each epoch's
metrics with an LR multiplier; :class:`PolicyScheduler` applies it to an optimizer the
way ``torch.optim.lr_scheduler.ReduceLROnPlateau`` does, but as a proper
``LRScheduler`` subclass, so it also works inside ``SequentialLR`` and
``ChainedScheduler`` and round-trips through ``torch.load(weights_only=True)``.

The helpers below (controller resolution, metric checking, rescaling) are shared with
the Hugging Face and Lightning callbacks in :mod:`lrpilot.integrations`.
This module imports only torch and torch-free lrpilot modules.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from typing import Any, Mapping, SupportsFloat

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrpilot.controller.base import Controller, pretrained_flag
from lrpilot.controller.spec import from_spec, list_controllers
from lrpilot.integrations.evidence import EVIDENCE_METRICS
from lrpilot.integrations.rewind import IntervalSnapshot, UndoIntrospection, check_undo_factor, prepare_undo, sharded_reason
from lrpilot.metrics import EpochMetrics

__all__ = [
    "PolicyScheduler", "ALLOWED_METRICS", "resolve_controller", "normalize_metrics", "check_required", "told_pretrained",
    "build_epoch_metrics", "scaled_lr", "rescale_optimizer", "controller_identity", "check_identity", "check_bounds",
]

ALLOWED_METRICS: tuple[str, ...] = ("train_loss", "val_loss", "val_acc", "train_loss_std", *EVIDENCE_METRICS,
                                    "weight_change")
"""The metric names ``PolicyScheduler.step`` (and the callbacks) accept: losses, accuracy and the
collapse evidence ``+guard`` reads (:func:`lrpilot.integrations.evidence.collapse_evidence`)."""

_POLICY_SUFFIXES = (".json", ".safetensors")


def _is_policy_path(text: str) -> bool:
    """A policy file's name, or an existing file that is not also a controller spec."""
    text = text.strip()
    if text.endswith(_POLICY_SUFFIXES):
        return True
    return os.path.isfile(text) and text.partition(":")[0].strip() not in list_controllers()


def resolve_controller(controller: Controller | str | os.PathLike[str]) -> Controller:
    """A Controller passes through; a spec string goes to ``from_spec``; a policy path to ``load_policy``.

    A path is an ``os.PathLike``, or a string ending in ``.json`` / ``.safetensors`` or
    naming an existing file (a controller spec such as ``"rule"`` wins over a file of that name).
    """
    if isinstance(controller, Controller):
        return controller
    if isinstance(controller, os.PathLike) or (isinstance(controller, str) and _is_policy_path(controller)):
        from lrpilot.controller import load_policy  # lazy: the policy module needs safetensors

        return load_policy(os.fspath(controller).strip())
    if isinstance(controller, str):
        return from_spec(controller)
    raise TypeError(
        f"controller must be a Controller, a spec string (e.g. 'plateau:patience=2') or a policy path, "
        f"got {type(controller).__name__}: {controller!r}"
    )



def _as_float(name: str, value: Any) -> float | None:
    """One metric as a float: a real number, or a one-element numpy array / torch tensor.

    ``TypeError`` naming the metric for anything else (None, bool, str, complex, containers),
    ``ValueError`` for an array of several numbers; an integer too large for a float is infinite.
    """
    if value is None and name == "val_acc":
        return None
    if isinstance(value, torch.Tensor) or _is_array(value):
        size = value.numel() if isinstance(value, torch.Tensor) else value.size
        if size != 1:
            raise ValueError(f"metric {name!r} must be a single number, got an array of shape {tuple(value.shape)}")
        value = value.detach().item() if isinstance(value, torch.Tensor) else value.item()
    number = isinstance(value, numbers.Real) or hasattr(value, "__float__")
    if isinstance(value, (bool, str, bytes, complex)) or not number:
        raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}: {_short(value)}")
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError) as exc:  # e.g. Decimal('sNaN'), or a __float__ that refuses
        raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}: {_short(value)} "
                        f"({exc})") from None


def _is_array(value: Any) -> bool:
    """A numpy array or scalar (duck-typed: this module does not import numpy)."""
    return all(hasattr(value, attr) for attr in ("shape", "size", "dtype", "item"))


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def normalize_metrics(metrics: Mapping[str, Any] | SupportsFloat) -> dict[str, float | None]:
    """Floats keyed by metric name; a bare number is ``val_loss`` (ReduceLROnPlateau-style)."""
    if isinstance(metrics, Mapping):
        unknown = sorted(str(k) for k in metrics if k not in ALLOWED_METRICS)
        if unknown:
            raise ValueError(f"unknown metric name(s) {unknown}; allowed: {list(ALLOWED_METRICS)}")
        return {name: _as_float(name, value) for name, value in metrics.items()}
    return {"val_loss": _as_float("val_loss", metrics)}


def check_required(controller: Controller, given: Mapping[str, Any], hint: str = "") -> None:
    """ValueError when the controller needs a metric that is not in ``given``."""
    required = tuple(getattr(controller, "required_metrics", ()) or ())
    missing = [name for name in required if name not in given or (name == "val_acc" and given[name] is None)]
    if missing:
        raise ValueError(
            f"controller {controller.spec()!r} needs metrics {list(required)}, but only {sorted(given)} were given "
            f"(missing {missing}){hint}"
        )


def _value(values: Mapping[str, float | None], name: str, default: float) -> float:
    value = values.get(name)
    return default if value is None else float(value)


def build_epoch_metrics(values: Mapping[str, float | None], epoch: int, lr: float) -> EpochMetrics:
    """The :class:`EpochMetrics` a controller sees; absent losses are NaN, a non-finite loss marks divergence."""
    train_loss, val_loss = _value(values, "train_loss", math.nan), _value(values, "val_loss", math.nan)
    given = [loss for name, loss in (("train_loss", train_loss), ("val_loss", val_loss))
             if values.get(name) is not None]
    return EpochMetrics(
        epoch=epoch,
        lr=lr,
        train_loss=train_loss,
        train_loss_std=_value(values, "train_loss_std", 0.0),
        val_loss=val_loss,
        val_acc=values.get("val_acc"),
        diverged=any(not math.isfinite(loss) for loss in given),
        **{name: values.get(name) for name in (*EVIDENCE_METRICS, "weight_change")},
    )


def scaled_lr(lr: float, multiplier: float, min_lr: float, max_lr: float | None) -> float:
    """``lr * multiplier`` clamped to [min_lr, max_lr]; never NaN when ``lr`` is finite."""
    if not math.isfinite(lr):
        return lr  # not ours to repair; we never make a finite LR non-finite
    new = lr * multiplier
    if not math.isfinite(new):
        new = lr
    return min(max(new, min_lr), math.inf if max_lr is None else max_lr)


def _set_lr(group: dict[str, Any], value: float) -> None:
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(value)
    else:
        group["lr"] = value


def rescale_optimizer(optimizer: Optimizer, multiplier: float, min_lr: float, max_lr: float | None,
                      scheduler: Any = None) -> None:
    """Scale every param group by ``multiplier`` (ratios kept), and the ``base_lrs`` of ``scheduler``.

    With a scheduler that has ``base_lrs`` (a LambdaLR, say), the base LR is the
    controlled quantity: it is scaled and clamped, and the group's current LR moves by
    the same ratio, so the scheduler's next ``step()`` does not undo the change.
    """
    bases = getattr(scheduler, "base_lrs", None)
    for i, group in enumerate(optimizer.param_groups):
        anchor = float(bases[i]) if bases is not None else float(group["lr"])
        new = scaled_lr(anchor, multiplier, min_lr, max_lr)
        ratio = new / anchor if anchor > 0 and math.isfinite(anchor) else 1.0
        if bases is not None:
            bases[i] = new
        _set_lr(group, float(group["lr"]) * ratio)


def controller_identity(controller: Controller) -> dict[str, Any]:
    """What identifies a controller in saved state: its spec, and a learned policy's hash."""
    return {"spec": controller.spec(), "policy_hash": getattr(controller, "policy_hash", None)}


def check_identity(controller: Controller, saved: Mapping[str, Any]) -> dict[str, Any]:
    """The saved controller state, checked against ``controller``; ValueError for another one.

    A learned policy is identified by its hash, so the same weights under another
    path still load (the saved spec is rewritten to this controller's).
    """
    state = dict(saved["controller"])
    mine = controller_identity(controller)
    theirs = {"spec": state.get("spec"), "policy_hash": saved.get("policy_hash")}
    if mine["policy_hash"] != theirs["policy_hash"]:
        raise ValueError(
            f"state is for policy {theirs['spec']!r} (hash {theirs['policy_hash']!r}), "
            f"not {mine['spec']!r} (hash {mine['policy_hash']!r})"
        )
    if mine["policy_hash"] is not None:
        state["spec"] = mine["spec"]
    elif theirs["spec"] != mine["spec"]:
        raise ValueError(f"state is for controller {theirs['spec']!r}, not {mine['spec']!r}")
    return state


def check_bounds(min_lr: float, max_lr: float | None) -> None:
    """ValueError unless 0 <= min_lr < max_lr (max_lr None: no upper bound), both finite."""
    if isinstance(min_lr, bool) or not isinstance(min_lr, numbers.Real) or not (math.isfinite(min_lr) and min_lr >= 0):
        raise ValueError(f"min_lr must be a finite number >= 0, got {min_lr!r}")
    if max_lr is not None and (isinstance(max_lr, bool) or not isinstance(max_lr, numbers.Real)
                               or not (math.isfinite(max_lr) and max_lr > min_lr)):
        raise ValueError(f"max_lr must be None or a finite number > min_lr ({min_lr}), got {max_lr!r}")


def check_total_epochs(total_epochs: int | None) -> None:
    """ValueError unless ``total_epochs`` is None (inferred later) or an integer >= 1."""
    if total_epochs is not None and (isinstance(total_epochs, bool) or not isinstance(total_epochs, int)
                                     or total_epochs < 1):
        raise ValueError(f"total_epochs must be None or an integer >= 1, got {total_epochs!r}")


def told_pretrained(pretrained: bool | None, model: Any, controller: Controller, owner: str) -> dict[str, bool]:
    """``reset``'s keyword for ``pretrained`` (:func:`~lrpilot.controller.base.pretrained_flag`). None means not said,
    taken as False, with one warning when ``model`` was loaded by Hugging Face's ``from_pretrained`` (a non-empty
    ``name_or_path``) and the controller acts differently on a pretrained model (``reads_pretrained``): a fine-tune
    nobody declares gets its from-scratch behaviour."""
    if pretrained is None:
        name = getattr(model, "name_or_path", None)
        if controller.reads_pretrained and isinstance(name, (str, os.PathLike)) and str(name):
            warnings.warn(f"{owner}: the model was loaded from {str(name)!r}; if it is a fine-tune, pass "
                          "pretrained=True (policy:default then raises the LR more gently within an epoch, and +guard "
                          "judges a whole epoch by how far it moved the weights; docs/deploy.md); pretrained=False "
                          "silences this", stacklevel=3)
        pretrained = False
    return pretrained_flag(pretrained)


class PolicyScheduler(UndoIntrospection, LRScheduler):
    """Any lrpilot controller as a learning-rate scheduler, stepped with validation metrics.

    Args:
        optimizer: the wrapped optimizer.
        controller: a :class:`~lrpilot.controller.Controller`, a spec string
            (``"rule"``, ``"plateau:patience=2"``, ``"policy:default"``) or the path of a
            learned policy file (``.json`` / ``.safetensors``).
        total_epochs: the epoch budget the controller plans for (progress t/T).
        min_lr: lower bound of every group's LR. Default: 0.
        max_lr: upper bound of every group's LR; None for no bound.
        model: the model ``optimizer`` trains; lets a controller that may undo rewind it
            (see Undo below). None: no undo.
        decisions_per_epoch: how many times per epoch ``step(metrics)`` is called (control
            intervals: 4 for a validation every quarter epoch); the controller is told. Default: 1.
        undo_lr_factor: what an undo multiplies the restored LR by, in (0, 1]. Default: 0.1.
        pretrained: True when ``model`` starts from pretrained weights (fine-tuning BERT, say); the
            controller is told (``policy:default`` then spreads its raises over the epoch's decisions,
            as ``policy:finetune`` does; ``+guard`` also judges a whole epoch by how far it moved the weights).
            Default: None, not said: taken as False, with a warning when ``model`` was loaded by
            ``from_pretrained`` and the controller reads it (``+guard``, ``policy:default``).

    ``step(metrics)`` after each validation, with a mapping of ``train_loss``,
    ``val_loss`` and optionally ``val_acc`` and ``train_loss_std``, or a bare number
    taken as ``val_loss`` (as for ReduceLROnPlateau). The controller's multiplier is
    applied to every param group (their ratios kept), clamped to [min_lr, max_lr]; it is
    decided on the first group's LR, so with several groups ReduceLROnPlateau's per-group
    floors (its ``min_lr`` and ``eps``) are reproduced for the first group only.
    ``step()`` with no argument keeps the LR, so per-batch callers, ``SequentialLR``
    and ``ChainedScheduler`` are safe. A metric the controller needs but the caller
    did not give raises ValueError, as does an unknown metric name or an array of several
    numbers; a value that is not a number (None, a string, a bool, a dict...) raises
    TypeError naming the metric. A refused ``step`` changes nothing. A NaN or infinite
    metric goes to the controller, which handles it (the LR never becomes NaN).

    Undo: with ``model=`` and a controller that may undo (``rule+guard``, say), the scheduler
    copies the model's and the optimizer's state at construction and after every ``step(metrics)``
    that did not undo (the start of each interval). When the controller answers undo, ``step``
    restores both in place, multiplies the LR by ``undo_lr_factor`` and counts the undo
    (:attr:`undos`); the retried interval starts from the restored state. Your data loader,
    a ``GradScaler``, EMA weights and anything else outside the model and the optimizer go on.
    A controller whose purpose is to undo without ``model=`` is refused; a learned policy that
    may undo is told not to (one warning). A sharded model (FSDP, DeepSpeed) is refused.

    ``last_epoch`` counts ``step`` calls as in every torch scheduler; the controller
    sees epoch ``controller.epochs_seen + 1`` and the first group's current LR.
    ``state_dict()`` holds only plain values and tensors (a learned policy is named by its hash,
    never pickled), so it survives ``torch.load(weights_only=True)``; with ``model=`` it holds the
    undo history and the snapshot, so a restart can still undo the last interval. Loading the state
    of another controller raises ValueError.

    Example:
        >>> # xdoctest: +SKIP
        >>> optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        >>> scheduler = PolicyScheduler(optimizer, "rule+guard", total_epochs=50, model=model)
        >>> for epoch in range(50):
        >>>     train_loss = train(...)
        >>>     val_loss, val_acc = validate(...)
        >>>     scheduler.step({"train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc})
    """

    def __init__(
        self,
        optimizer: Optimizer,
        controller: Controller | str | os.PathLike[str],
        *,
        total_epochs: int,
        min_lr: float = 0.0,
        max_lr: float | None = None,
        model: torch.nn.Module | None = None,
        decisions_per_epoch: int = 1,
        undo_lr_factor: float = 0.1,
        pretrained: bool | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        check_bounds(min_lr, max_lr)
        self.undo_lr_factor = check_undo_factor(undo_lr_factor)
        self.controller = resolve_controller(controller)
        undoes = prepare_undo(self.controller, can_rewind=model is not None, owner="PolicyScheduler",
                              why="was given no model= (pass model=model to let it rewind the model)")
        reason = sharded_reason(model, [optimizer]) if undoes else None
        if reason is not None:
            raise ValueError(f"PolicyScheduler cannot undo here: {reason}; use a controller without undo")
        self.min_lr = float(min_lr)
        self.max_lr = None if max_lr is None else float(max_lr)
        self._multiplier: float | None = None
        self.undone: list[int] = []
        """The decisions (1-based, as ``controller.epochs_seen``) that were undos."""
        self._last_undo = False
        first = optimizer.param_groups[0]
        self.controller.reset(float(first.get("initial_lr", first["lr"])), total_epochs, decisions_per_epoch,
                              **told_pretrained(pretrained, model, self.controller, "PolicyScheduler"))
        super().__init__(optimizer)
        self._snapshot = IntervalSnapshot(model, [optimizer]) if undoes and model is not None else None
        if self._snapshot is not None:
            self._snapshot.take()

    def step(self, metrics: Mapping[str, Any] | SupportsFloat | None = None) -> None:
        """Apply the controller to this validation's ``metrics``; with none, keep the LR."""
        if metrics is None:
            super().step()
            return
        values = self._with_weight_change(normalize_metrics(metrics))
        check_required(self.controller, values,
                       hint="; pass them as scheduler.step({'train_loss': ..., 'val_loss': ...})")
        lr = float(self.optimizer.param_groups[0]["lr"])
        epoch_metrics = build_epoch_metrics(values, epoch=self.controller.epochs_seen + 1, lr=lr)
        decision = self.controller.act(epoch_metrics)
        self._multiplier = self._carry_out(decision)
        try:
            super().step()
        finally:
            self._multiplier = None
        if self._snapshot is not None:
            self._snapshot.take()  # the start of the next interval (after an undo: the retry, LR cut)

    def get_lr(self) -> list[float | torch.Tensor]:
        """The current LRs, scaled by the pending multiplier when ``step`` got metrics."""
        current = [float(group["lr"]) for group in self.optimizer.param_groups]
        if self._multiplier is None:
            return list(current)
        return [scaled_lr(lr, self._multiplier, self.min_lr, self.max_lr) for lr in current]

    def _get_closed_form_lr(self) -> list[float]:
        """The base LRs: ``SequentialLR`` switches to this scheduler at a milestone with
        ``_update_lr(0)``, and, like torch's closed-form schedulers, the controller then
        starts from the full base LR (the end of a warm-up)."""
        return [float(lr) for lr in self.base_lrs]

    def get_last_action(self) -> float | str | None:
        """The controller's answer at the last ``step(metrics)``: the multiplier, or ``"undo"``
        (see :attr:`last_decision`); None before the first."""
        return self.last_decision

    def state_dict(self) -> dict[str, Any]:
        """Plain values (and the snapshot's tensors): the controller's whole state, its identity,
        counters, bounds and the undo history."""
        return {
            "controller": self.controller.state_dict(),
            "policy_hash": getattr(self.controller, "policy_hash", None),
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "base_lrs": [float(lr) for lr in self.base_lrs],
            "_last_lr": [float(lr) for lr in self.get_last_lr()],
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "undo": {"undone": list(self.undone), "last_undo": self._last_undo, "factor": self.undo_lr_factor,
                     "snapshot": self._snapshot.state_dict() if self._snapshot is not None else None},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; ValueError for another controller or policy. A state
        saved without a snapshot (or before undo existed) takes a fresh snapshot here, with ``model=``."""
        if not isinstance(state_dict, Mapping) or "controller" not in state_dict:
            keys = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise ValueError(f"not a PolicyScheduler state (expected a 'controller' entry), got {keys}")
        self.controller.load_state_dict(check_identity(self.controller, state_dict))
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        self.base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
        self._last_lr = [float(lr) for lr in state_dict["_last_lr"]]
        self.min_lr = float(state_dict["min_lr"])
        self.max_lr = None if state_dict["max_lr"] is None else float(state_dict["max_lr"])
        undo = state_dict.get("undo", {})
        self.undone = [int(i) for i in undo.get("undone", [])]
        self._last_undo = bool(undo.get("last_undo", False))
        self.undo_lr_factor = float(undo.get("factor", self.undo_lr_factor))
        if self._snapshot is not None:
            self._snapshot.load_state_dict(undo.get("snapshot"))
