"""The `Controller` protocol: metrics in, learning-rate multiplier out.

A controller is told the initial LR and the epoch budget by :meth:`Controller.reset`,
then after every epoch :meth:`Controller.act` receives that epoch's
:class:`~lrpilot.metrics.EpochMetrics` and answers with the multiplier to apply to the
learning rate for the next epoch. The public ``act`` validates and clamps; subclasses
implement ``_act`` (the SB3 ``predict`` / ``_predict`` split).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from lrpilot.metrics import EpochMetrics

__all__ = ["Controller", "MIN_MULTIPLIER", "MAX_MULTIPLIER", "monitored_value", "is_better", "UNDO", "Undo", "pretrained_flag"]

MIN_MULTIPLIER = 1e-6
"""Smallest multiplier ``act`` returns; a zero LR could never be raised again."""
MAX_MULTIPLIER = 1e6
"""Largest multiplier ``act`` returns."""


class Undo:
    """The answer "undo": rewind the run to the start of the interval that just ended (or, with
    ``intervals=k``, of the k-th interval back: the one just ended and the k - 1 kept before it) and
    retry from there at the undone interval's learning rate, cut. :data:`UNDO` is ``Undo(1)``, the
    only undo most drivers know; a controller answers a deeper one only up to the limit its driver
    allowed (:meth:`Controller.allow_rewind`). ``cuts=n`` asks for the driver's LR cut n times over
    (its ``undo_lr_factor`` to the power n; ``cuts=2`` with the default 0.1 retries at a hundredth):
    the guard's answer to an interval that thrashed, where one cut is unlikely to be enough. Instances are
    cached: ``Undo(1) is UNDO``."""

    _instances: "dict[tuple[int, int], Undo]" = {}
    intervals: int
    cuts: int

    def __new__(cls, intervals: int = 1, cuts: int = 1) -> "Undo":
        if isinstance(intervals, bool) or not isinstance(intervals, int) or intervals < 1:
            raise ValueError(f"Undo: intervals must be an integer >= 1, got {intervals!r}")
        if isinstance(cuts, bool) or not isinstance(cuts, int) or cuts < 1:
            raise ValueError(f"Undo: cuts must be an integer >= 1, got {cuts!r}")
        if (intervals, cuts) not in cls._instances:
            instance = super().__new__(cls)
            instance.intervals = intervals
            instance.cuts = cuts
            cls._instances[intervals, cuts] = instance
        return cls._instances[intervals, cuts]

    def lr_factor(self, factor: float) -> float:
        """The LR multiplier of the retry, for a driver whose one cut is ``factor``."""
        return float(factor) ** self.cuts

    def __repr__(self) -> str:
        args = [f"intervals={self.intervals}"] * (self.intervals != 1) + [f"cuts={self.cuts}"] * (self.cuts != 1)
        return f"Undo({', '.join(args)})" if args else "UNDO"

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles stay the cached instance
        return (Undo, (self.intervals, self.cuts))


UNDO = Undo()
"""What :meth:`Controller.act` returns for "undo" (only a controller with ``may_undo``)."""


class Controller(ABC):
    """Base class of every learning-rate controller.

    Subclasses set ``name`` (the spec-string name), set ``self.required_metrics`` (the
    :class:`EpochMetrics` fields they read, beyond ``lr``) and implement ``_act``.
    State for ``state_dict`` lives in plain attributes listed in ``_state_keys``;
    every value there must be a bool, int, float, str, None or a list of those, so the
    state survives JSON and ``torch.load(weights_only=True)``.
    """

    name: ClassVar[str] = "controller"
    _state_keys: ClassVar[tuple[str, ...]] = ()
    may_undo: bool = False
    """True for a controller that may answer :data:`UNDO`; whoever drives it must then be able to
    rewind the run (``TrainingSession(undo=True)``), and refuses it otherwise."""
    undo_optional: bool = False
    """True when undo is one option among others that can be switched off (a learned policy whose
    action set includes undo: :meth:`disable_undo` masks the action); False for a controller whose
    purpose is to undo (``+guard``), which a driver that cannot rewind must refuse."""
    rewind_limit: int = 1
    """The most intervals one undo may rewind (``Undo(intervals=k)``, k <= this). 1 unless the driver
    keeps more snapshots and says so with :meth:`allow_rewind`."""

    def allow_rewind(self, intervals: int) -> None:
        """Told by a driver that can rewind up to ``intervals`` intervals at once (``TrainingSession``
        runs can; the deployed forms, the environments and the population keep one snapshot and never
        call this). A controller that wants fewer keeps its own limit."""
        if isinstance(intervals, bool) or not isinstance(intervals, int) or intervals < 1:
            raise ValueError(f"allow_rewind: intervals must be an integer >= 1, got {intervals!r}")

    @property
    def undo_reach(self) -> int:
        """How many interval starts the driver must keep for the next decision: an undo after the
        next interval rewinds at most this many intervals (1 for every controller but ``+guard``)."""
        return 1

    @property
    def reads_pretrained(self) -> bool:
        """Whether being told ``pretrained=True`` changes what this controller does (``+guard``, a learned policy whose
        card has its own ``raise_power_pretrained``); the deployed forms warn about a fine-tune nobody declares only
        then. False for every other built-in controller."""
        return False

    def disable_undo(self) -> None:
        """Never answer :data:`UNDO` from now on; only for ``undo_optional`` controllers (ValueError otherwise)."""
        if not self.may_undo:
            return
        if not self.undo_optional:
            raise ValueError(f"controller {self.spec()!r} undoes, which needs a run that can be rewound")
        self.may_undo = False

    def __init__(self) -> None:
        self.initial_lr: float = math.nan
        self.total_epochs: int = 0
        self.decisions_per_epoch: int = 1
        self.pretrained: bool = False
        """Whether the run fine-tunes a model that starts from pretrained weights (told by :meth:`reset`)."""
        self.epochs_seen: int = 0
        """Decisions taken so far (with the default one decision per epoch: epochs seen)."""
        self.last_multiplier: float = 1.0
        self.required_metrics: tuple[str, ...] = ()
        """The metrics ``act`` reads (beyond ``lr``); deployment checks the caller gives them."""

    # -- public API ---------------------------------------------------------------
    def reset(self, initial_lr: float, total_epochs: int, decisions_per_epoch: int = 1, *,
              pretrained: bool = False) -> None:
        """Start a new run with learning rate ``initial_lr`` and a budget of ``total_epochs``, deciding
        ``decisions_per_epoch`` times per epoch (control intervals: 4 at ``--interval 0.25``);
        ``pretrained``: the model starts from pretrained weights (a fine-tune).

        The budget stays in epochs; :attr:`total_decisions` is the number of ``act`` calls it allows.
        Every built-in controller keeps its parameters in epochs whatever the interval (see
        docs/controller.md, "Control intervals"). Only a learned policy whose card says so acts
        differently on a pretrained model (card ``raise_power_pretrained``); drivers pass ``pretrained``
        only when it is true, so a plugin controller whose ``reset`` predates it keeps working elsewhere.
        """
        if not (isinstance(initial_lr, (int, float)) and math.isfinite(initial_lr) and initial_lr > 0):
            raise ValueError(f"initial_lr must be a finite number > 0, got {initial_lr!r}")
        if isinstance(total_epochs, bool) or not isinstance(total_epochs, int) or total_epochs < 1:
            raise ValueError(f"total_epochs must be an integer >= 1, got {total_epochs!r}")
        if isinstance(decisions_per_epoch, bool) or not isinstance(decisions_per_epoch, int) or decisions_per_epoch < 1:
            raise ValueError(f"decisions_per_epoch must be an integer >= 1, got {decisions_per_epoch!r}")
        pretrained_flag(pretrained)  # ValueError for anything but a bool
        self.initial_lr = float(initial_lr)
        self.total_epochs = total_epochs
        self.decisions_per_epoch = decisions_per_epoch
        self.pretrained = pretrained
        self.epochs_seen = 0
        self.last_multiplier = 1.0
        self._reset()

    def act(self, metrics: EpochMetrics) -> "float | Undo":
        """The LR multiplier for the next epoch, given the epoch that just ended.

        Always a finite number in [MIN_MULTIPLIER, MAX_MULTIPLIER]; a subclass that
        answers NaN or infinity is treated as answering 1 (keep the LR). A controller with
        ``may_undo`` may also answer :data:`UNDO`; any other that does raises ``RuntimeError``.
        """
        if not isinstance(metrics, EpochMetrics):
            raise TypeError(f"act() takes an EpochMetrics, got {type(metrics).__name__}")
        if self.total_epochs == 0:
            raise RuntimeError(f"{type(self).__name__}.act() called before reset()")
        self.epochs_seen += 1
        decision = self._act(metrics)
        if isinstance(decision, Undo):
            if not self.may_undo:
                raise RuntimeError(f"{type(self).__name__} answered UNDO but does not declare may_undo")
            if decision.intervals > self.rewind_limit:
                raise RuntimeError(f"{type(self).__name__} answered {decision!r} but its driver allows "
                                   f"rewinding {self.rewind_limit} interval(s)")
            return decision
        multiplier = float(decision)
        if not math.isfinite(multiplier):
            multiplier = 1.0
        multiplier = min(max(multiplier, MIN_MULTIPLIER), MAX_MULTIPLIER)
        self.last_multiplier = multiplier
        return multiplier

    @property
    def total_decisions(self) -> int:
        """The number of decisions the budget allows: ``total_epochs * decisions_per_epoch``."""
        return self.total_epochs * self.decisions_per_epoch

    @property
    def epochs_elapsed(self) -> float:
        """The budget spent after the decisions seen so far, in epochs."""
        return self.epochs_seen / self.decisions_per_epoch

    def spec(self) -> str:
        """The spec string that rebuilds this controller with :func:`from_spec`."""
        return self.name

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this controller exactly (JSON-safe values)."""
        state: dict[str, Any] = {
            "spec": self.spec(),
            "initial_lr": self.initial_lr,
            "total_epochs": self.total_epochs,
            **({"decisions_per_epoch": self.decisions_per_epoch} if self.decisions_per_epoch != 1 else {}),
            **pretrained_flag(self.pretrained),
            "epochs_seen": self.epochs_seen,
            "last_multiplier": self.last_multiplier,
        }
        for key in self._state_keys:
            value = getattr(self, key)
            state[key] = list(value) if isinstance(value, (list, tuple)) else value
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; refuses a state of another controller."""
        if state.get("spec") != self.spec():
            raise ValueError(f"state is for controller {state.get('spec')!r}, not {self.spec()!r}")
        self.initial_lr = float(state["initial_lr"])
        self.total_epochs = int(state["total_epochs"])
        self.decisions_per_epoch = int(state.get("decisions_per_epoch", 1))  # absent: one per epoch
        self.pretrained = bool(state.get("pretrained", False))  # absent: not told (states written before session 28)
        self.epochs_seen = int(state["epochs_seen"])
        self.last_multiplier = float(state["last_multiplier"])
        for key in self._state_keys:
            setattr(self, key, state[key])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()!r})"

    # -- for subclasses -----------------------------------------------------------
    def _reset(self) -> None:
        """Clear per-run state; called by :meth:`reset` after the common fields are set."""

    @abstractmethod
    def _act(self, metrics: EpochMetrics) -> float:
        """Decide the multiplier; ``self.epochs_seen`` already counts this epoch."""


def pretrained_flag(pretrained: bool) -> dict[str, bool]:
    """:meth:`Controller.reset`'s keyword for a pretrained model, empty otherwise: drivers pass it only when true, so
    a plugin controller whose ``reset`` predates it keeps working elsewhere. ``ValueError`` for anything but a bool."""
    if not isinstance(pretrained, bool):
        raise ValueError(f"pretrained must be True or False, got {pretrained!r}")
    return {"pretrained": True} if pretrained else {}


def monitored_value(metrics: EpochMetrics, metric: str) -> float:
    """The monitored metric as a float; None (no accuracy) reads as NaN."""
    value = getattr(metrics, metric)
    return math.nan if value is None else float(value)


def is_better(value: float, best: float, mode: str, threshold: float, threshold_mode: str) -> bool:
    """torch's ReduceLROnPlateau comparison; a NaN value is never better."""
    if mode == "min" and threshold_mode == "rel":
        return value < best * (1.0 - threshold)
    if mode == "min":
        return value < best - threshold
    if threshold_mode == "rel":
        return value > best * (threshold + 1.0)
    return value > best + threshold
