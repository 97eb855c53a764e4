"""`DivergenceRule`: when an epoch counts as diverged. The one implementation.

An epoch has diverged when

1. a training loss, the validation loss or a weight is not finite; or
2. the validation loss exceeds ``chance_factor`` times the chance-level loss
   ``log(num_classes)`` (the cross-entropy of a uniform guess): a run that far above
   chance has blown up even while its numbers are still finite; or
3. ``growth_factor`` is set and the validation loss exceeds ``growth_factor`` times the
   run's first validation loss (that of the first interval not undone): the loss has exploded relative to where
   this run started, even if it is not yet far above chance.

Who applies which threshold. :class:`~lrpilot.training.TrainingSession` and the population
trainer (:class:`~lrpilot.training.population_trainer.Population`) evaluate the rule once per
epoch and record the outcome in ``EpochMetrics.diverged``; everything above them (``lrpilot
train``, ``lrpilot compare``, the environments) reads that flag and applies no rule of its own.
By default (``DivergenceRule()``) the growth threshold is off, so a session or a population
flags only (1) and (2) with ``chance_factor=10``, as ``lrpilot train`` and ``lrpilot compare``
always have. The environments (:class:`~lrpilot.envs.lr_control.LRControlEnv` and the population
environments) build their sessions and populations with
``DivergenceRule(growth_factor=EnvConfig.divergence_growth_factor)`` (default 10), which ends an
episode exactly when it ended before the rule had one home: chance rule or growth rule. The two
uses differ on purpose: a controller being learned is stopped early in runs that explode from a
good start, while a comparison run keeps going unless it is truly lost, which keeps the results
of existing studies unchanged.

The first validation loss comes from the run's own history (``history[0]``), which session and
population state dicts already hold, so states saved before the rule existed resume unchanged.

Example:
    >>> rule = DivergenceRule(growth_factor=10.0)
    >>> rule.diverged(val_loss=25.0, num_classes=10, first_val_loss=2.0)  # 25 > 10 x 2.0
    True
    >>> DivergenceRule().diverged(val_loss=25.0, num_classes=10, first_val_loss=2.0)  # 25 > 10 x log(10)
    True
    >>> DivergenceRule().diverged(val_loss=float("nan"), num_classes=10)
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrpilot.metrics import EpochMetrics

import math
import warnings
from dataclasses import dataclass
from typing import Any

__all__ = ["DivergenceRule", "resolve_rule", "first_val_loss"]


def _finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is finite as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float range
        return False


def _check_factor(name: str, value: Any, optional: bool) -> None:
    if optional and value is None:
        return
    if not (_finite_number(value) and value > 1):
        allowed = "a finite number > 1" + (" or None" if optional else "")
        raise ValueError(f"DivergenceRule: {name} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class DivergenceRule:
    """When an epoch has diverged (see the module docstring); validated when built."""

    chance_factor: float = 10.0
    """A validation loss above this multiple of ``log(num_classes)`` (chance level) is divergence (> 1)."""
    growth_factor: float | None = None
    """A validation loss above this multiple of the run's first validation loss is divergence (> 1);
    None (the default) switches this threshold off."""

    def __post_init__(self) -> None:
        _check_factor("chance_factor", self.chance_factor, optional=False)
        _check_factor("growth_factor", self.growth_factor, optional=True)

    def chance_limit(self, num_classes: int) -> float:
        """The validation loss above which an epoch has diverged by the chance threshold."""
        return self.chance_factor * math.log(max(2, num_classes))

    def diverged(self, val_loss: float, num_classes: int, *, finite: bool = True,
                 first_val_loss: float | None = None) -> bool:
        """Whether an epoch with validation loss ``val_loss`` has diverged.

        ``finite``: every training loss and every weight of the epoch is finite.
        ``first_val_loss``: the run's first validation loss (None for the first epoch itself,
        or when unknown); a non-finite one never triggers the growth threshold.
        """
        if not (finite and math.isfinite(val_loss)):
            return True
        if val_loss > self.chance_limit(num_classes):
            return True
        if self.growth_factor is None or first_val_loss is None:
            return False
        return val_loss > self.growth_factor * first_val_loss


def resolve_rule(rule: DivergenceRule | None, divergence_factor: float | None, owner: str) -> DivergenceRule:
    """The rule a session or population applies: ``rule``, the default rule, or (deprecated) a
    chance-only rule from the older ``divergence_factor`` keyword, which meant ``chance_factor``."""
    if rule is not None and not isinstance(rule, DivergenceRule):
        raise TypeError(f"{owner}: divergence must be a DivergenceRule or None, got {type(rule).__name__}")
    if divergence_factor is None:
        return rule if rule is not None else DivergenceRule()
    if rule is not None:
        raise ValueError(f"{owner}: pass divergence or the deprecated divergence_factor, not both")
    warnings.warn(f"{owner}: divergence_factor is deprecated; pass "
                  f"divergence=DivergenceRule(chance_factor={divergence_factor!r})", DeprecationWarning, stacklevel=3)
    return DivergenceRule(chance_factor=divergence_factor)


def first_val_loss(history: "list[EpochMetrics]") -> float | None:
    """The growth test's reference: the validation loss of the first interval that was not undone (an
    undone one's weights were discarded, and a diverged one's NaN would switch the test off)."""
    return next((m.val_loss for m in history if not m.undone), None)
