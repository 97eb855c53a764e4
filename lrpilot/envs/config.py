"""`EnvConfig`: the validated keyword arguments of :class:`~lrpilot.envs.lr_control.LRControlEnv`."""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import InitVar, dataclass, field
from typing import Any, Mapping

from lrpilot.controller.actions import LR_BOUNDS, ActionSpec
from lrpilot.controller.features import ENCODER_VERSIONS, ObservationEncoder
from lrpilot.training.divergence import DivergenceRule
from lrpilot.training.intervals import Interval

__all__ = ["EnvConfig", "REWARDS", "BUDGET_ENDS"]

BUDGET_ENDS = ("truncated", "terminal")
"""How an episode ends when its budget is used up (:attr:`EnvConfig.budget_end`)."""

REWARDS = ("log_val_loss", "final_acc", "final_loss")
"""Reward choices: per-epoch log-improvement of val loss, final val accuracy, minus final val loss."""


def _bad(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"LRControlEnv: {name} must be {allowed}, got {value!r}")


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool); an int beyond float range is not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < 1e308 if isinstance(value, int) else math.isfinite(value)


def _pair(name: str, value: Any, allowed: str) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(_is_number(v) and v > 0 for v in value):
        raise _bad(name, value, allowed)
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise _bad(name, value, allowed)
    return lo, hi


@dataclass(frozen=True)
class EnvConfig:
    """What an :class:`LRControlEnv` trains and how it scores; every field is validated."""

    task: str | tuple[str, ...] = "digits-mlp"
    """A registered task name, or several: each episode draws one uniformly."""
    initial_lr: float | tuple[float, float] | None = None
    """The episode's initial LR: a number, a ``(low, high)`` pair drawn log-uniformly, or None (the task's)."""
    epochs: int | None = None
    """Epoch budget of an episode, >= 2 (None: the task's). Reset runs the first epoch; each step one more."""
    actions: str | ActionSpec | tuple[float, ...] = "0.1,0.5,1,2"
    """Discrete multipliers (``"0.1,0.5,1,2"`` or a tuple), ``"continuous"`` or ``"continuous:LO,HI"``."""
    reward: str = "log_val_loss"
    """One of :data:`REWARDS`."""
    lr_bounds: tuple[float, float] = LR_BOUNDS
    """The LR stays within ``[initial_lr * lr_bounds[0], initial_lr * lr_bounds[1]]``."""
    divergence_growth_factor: float | None = 10.0
    """A val loss above this multiple of the episode's *first* val loss counts as divergence (> 1;
    None: off). Divergence by a non-finite loss or weight, or by a val loss above 10 x chance level
    (``DivergenceRule.chance_factor``), applies either way; see :attr:`divergence_rule`."""
    divergence_penalty: float = -10.0
    """The (finite) reward of the step that diverges; the episode then terminates."""
    session_seeds: tuple[int, int] = (0, 2**31 - 1)
    """Training-session seeds are drawn uniformly from ``[low, high)``; keep evaluation seeds outside."""
    device: str = "cpu"
    """Device of the training sessions (``cpu``, ``cuda``, ``cuda:N`` or ``auto``)."""
    data_dir: str | None = None
    """Local dataset copy for tasks that need one."""
    task_options: Mapping[str, Any] = field(default_factory=dict)
    """Overrides applied to every task (``width``, ``batch_size``, ``optimizer``...); not ``lr`` or
    ``epochs``, which are ``initial_lr`` and ``epochs`` here."""
    epoch_examples: int | None = None
    """Examples per training epoch (None: the whole train split)."""
    evaluate_test: bool = False
    """At the end of an episode, put the test loss and accuracy in ``info["test"]`` (for evaluation only)."""
    budget_end: str = "truncated"
    """How an episode that used up its budget ends: ``"truncated"`` (the default, as before) or
    ``"terminal"`` (``terminated=True``, ``info["diverged"]`` False). The budget is in the observation
    (``progress``; with encoder v2 also the decisions left and the budget's size), so the end of the
    budget is a true terminal state of the learner's problem: with ``"terminal"`` an RL algorithm does
    not bootstrap a value past it (SB3 bootstraps a truncated step's final observation)."""
    encoder_version: int = 1
    """Version of the observation encoder (:data:`~lrpilot.controller.features.ENCODER_VERSIONS`):
    1 (the default, what the shipped policy reads) or 2 (adds the budget's size and undo)."""
    interval: str | float | Interval | None = None
    """Control interval: None (one step per epoch, the default), a fraction of an epoch (``0.25``: four
    steps per epoch) or a number of optimizer steps (``"50steps"``); see
    :class:`~lrpilot.training.intervals.Interval`. One step is one interval, and the budget of
    ``epochs`` allows ``epochs * intervals_per_epoch`` of them. Stored parsed (None for one epoch)."""
    undo: bool = False
    """Offer undo: one more discrete action (after the multipliers) that rewinds the run to the start of
    the interval that just ended and retries it at a tenth of the LR (see ``LRControlEnv``, "Undo").
    Discrete action sets only; an action set written with ``undo`` (``"0.1,0.5,1,2,undo"``) sets it."""
    divergence_factor: InitVar[float | None] = None
    """Deprecated name of :attr:`divergence_growth_factor` (saved configs may hold it): accepted
    with a ``DeprecationWarning``; not a field, so ``asdict`` and ``fields`` show only the new name.
    Only a keyword: read :attr:`divergence_growth_factor` (``config.divergence_factor`` is always
    None, so that ``dataclasses.replace`` keeps working)."""

    def __post_init__(self, divergence_factor: float | None) -> None:
        self._take_deprecated(divergence_factor)
        tasks = (self.task,) if isinstance(self.task, str) else self.task
        if not isinstance(tasks, (tuple, list)) or not tasks or not all(isinstance(t, str) and t for t in tasks):
            raise _bad("task", self.task, "a task name or a non-empty list of task names")
        object.__setattr__(self, "task", tuple(tasks) if len(tasks) > 1 else tasks[0])
        self._check_lr()
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 2):
            raise _bad("epochs", self.epochs, "an integer >= 2 or None")
        self._check_actions()
        if self.reward not in REWARDS:
            raise _bad("reward", self.reward, f"one of {', '.join(REWARDS)}")
        lo, hi = _pair("lr_bounds", self.lr_bounds, "a pair (low, high) of numbers > 0 with low <= 1 <= high")
        if not lo <= 1.0 <= hi:
            raise _bad("lr_bounds", self.lr_bounds, "a pair (low, high) of numbers > 0 with low <= 1 <= high")
        object.__setattr__(self, "lr_bounds", (lo, hi))
        try:
            self.divergence_rule  # noqa: B018  (validates the factor)
        except ValueError:
            raise _bad("divergence_growth_factor", self.divergence_growth_factor, "a finite number > 1 or None") from None
        if not _is_number(self.divergence_penalty):
            raise _bad("divergence_penalty", self.divergence_penalty, "a finite number")
        self._check_seeds()
        examples = self.epoch_examples
        if examples is not None and (isinstance(examples, bool) or not isinstance(examples, int) or examples < 1):
            raise _bad("epoch_examples", examples, "an integer >= 1 or None")
        self._check_options()
        if not isinstance(self.device, str):
            raise _bad("device", self.device, "a device string such as 'cpu', 'cuda' or 'auto'")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise _bad("data_dir", self.data_dir, "a directory path (a string) or None")
        if not isinstance(self.evaluate_test, bool):
            raise _bad("evaluate_test", self.evaluate_test, "True or False")
        if self.budget_end not in BUDGET_ENDS:
            raise _bad("budget_end", self.budget_end, f"one of {', '.join(BUDGET_ENDS)}")
        if isinstance(self.encoder_version, bool) or not isinstance(self.encoder_version, int) \
                or self.encoder_version not in ENCODER_VERSIONS:
            raise _bad("encoder_version", self.encoder_version, f"one of {', '.join(map(str, ENCODER_VERSIONS))}")

    def _check_actions(self) -> None:
        """Parse ``actions`` (kept without undo) and ``undo``; an action set written with undo sets ``undo``."""
        if not isinstance(self.undo, bool):
            raise _bad("undo", self.undo, "True or False")
        try:
            spec = self._parsed_actions()
        except (ValueError, OverflowError) as exc:  # OverflowError: an int multiplier beyond float range
            raise exc if str(exc).startswith("LRControlEnv:") else ValueError(f"LRControlEnv: actions: {exc}") from None
        if spec.undo:
            object.__setattr__(self, "undo", True)
            spec = dataclasses.replace(spec, undo=False)
        if self.undo and spec.kind != "discrete":
            raise _bad("undo", self.undo, "False with a continuous action set (undo is an extra discrete action)")
        object.__setattr__(self, "actions", spec)
        try:
            interval = Interval.parse(self.interval)
        except ValueError as exc:
            raise ValueError(f"LRControlEnv: interval: {exc}") from None
        object.__setattr__(self, "interval", None if interval.is_epoch else interval)

    @property
    def control_interval(self) -> Interval:
        """The control interval as an :class:`~lrpilot.training.intervals.Interval` (one epoch by default)."""
        return Interval.parse(self.interval)

    def observation_encoder(self) -> ObservationEncoder:
        """The encoder of ``encoder_version`` (the same for every episode)."""
        return ObservationEncoder(self.encoder_version)

    def _take_deprecated(self, divergence_factor: float | None) -> None:
        if divergence_factor is None:
            return
        warnings.warn("LRControlEnv: divergence_factor is deprecated; it is now divergence_growth_factor "
                      "(a multiple of the episode's first validation loss)", DeprecationWarning, stacklevel=4)
        if self.divergence_growth_factor != EnvConfig.divergence_growth_factor:
            raise ValueError("LRControlEnv: pass divergence_growth_factor or the deprecated divergence_factor, not both")
        try:
            DivergenceRule(growth_factor=divergence_factor)
        except ValueError:
            raise _bad("divergence_factor", divergence_factor, "a finite number > 1 (deprecated: "
                       "divergence_growth_factor)") from None
        object.__setattr__(self, "divergence_growth_factor", divergence_factor)

    @property
    def divergence_rule(self) -> DivergenceRule:
        """The rule the environment's sessions apply: the default chance threshold and this growth threshold."""
        return DivergenceRule(growth_factor=self.divergence_growth_factor)

    def _check_options(self) -> None:
        options = self.task_options
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            raise _bad("task_options", options, "a mapping of task settings")
        if "lr" in options or "epochs" in options:
            raise _bad("task_options", options, "task settings other than lr and epochs (use initial_lr and epochs)")
        object.__setattr__(self, "task_options", dict(options))

    def _check_lr(self) -> None:
        lr = self.initial_lr
        if lr is None:
            return
        if isinstance(lr, (tuple, list)):
            object.__setattr__(self, "initial_lr", _pair("initial_lr", lr, "a number > 0, a (low, high) pair or None"))
        elif not (_is_number(lr) and lr > 0):
            raise _bad("initial_lr", lr, "a number > 0, a (low, high) pair or None")

    def _check_seeds(self) -> None:
        seeds = self.session_seeds
        ok = isinstance(seeds, (tuple, list)) and len(seeds) == 2 and all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        if not ok or not 0 <= seeds[0] < seeds[1] <= 2**63 - 1:
            raise _bad("session_seeds", seeds, "a pair of integers (low, high) with 0 <= low < high")
        object.__setattr__(self, "session_seeds", (int(seeds[0]), int(seeds[1])))

    @property
    def tasks(self) -> tuple[str, ...]:
        """The task names an episode draws from."""
        return (self.task,) if isinstance(self.task, str) else tuple(self.task)

    @property
    def action_spec(self) -> ActionSpec:
        """The action set as an :class:`ActionSpec`, with the undo action when ``undo``."""
        spec = self._parsed_actions()
        return dataclasses.replace(spec, undo=True) if self.undo and not spec.undo else spec

    def _parsed_actions(self) -> ActionSpec:
        if isinstance(self.actions, ActionSpec):
            return self.actions
        if isinstance(self.actions, str):
            return ActionSpec.parse(self.actions)
        if isinstance(self.actions, (tuple, list)):
            return ActionSpec(kind="discrete", multipliers=tuple(self.actions))
        raise _bad("actions", self.actions, "'0.1,0.5,1,2', 'continuous', 'continuous:LO,HI' or a list of multipliers")
