"""Metric-driven rules: ``plateau`` (torch ReduceLROnPlateau), ``rule`` (the seed
report's threshold/factor rule) and ``bold`` (the bold driver, whose decision
:func:`bold_multiplier` the observation-vector teachers of :mod:`lrpilot.controller.teachers` share).

Non-finite metrics: ``plateau`` and ``rule`` treat a NaN or infinite metric as "did
not improve" (torch's own comparison does the same), so they cut the LR; ``bold``
treats it as "got worse" and multiplies by ``down``. None of them ever returns a
non-finite multiplier.

Control intervals shorter than an epoch (``decisions_per_epoch`` = k > 1; docs/controller.md,
"Control intervals"): every parameter keeps its meaning in epochs. ``patience`` and ``cooldown``
count epochs, so a cut needs ``(patience + 1) * k`` decisions in a row without an improvement on
the best so far beyond ``threshold`` (which, relative to the best, lets slow progress add up
across intervals), and ``cooldown * k`` decisions follow a cut; ``factor`` is one cut whatever
the interval. ``bold``'s ``up`` and ``down`` are rates per epoch: each decision multiplies by
``up ** (1 / k)`` or ``down ** (1 / k)``. With k = 1 every rule decides as it always has.
"""

from __future__ import annotations

import math
from typing import ClassVar

from lrpilot.controller.base import Controller, is_better, monitored_value
from lrpilot.controller.spec import format_spec, register_controller
from lrpilot.controller.teacher_rules import bold_multiplier
from lrpilot.metrics import EpochMetrics

__all__ = ["Plateau", "Rule", "Bold", "bold_multiplier"]

_METRICS = ("val_loss", "train_loss", "val_acc")


def _check_choice(owner: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}: {key} must be one of {', '.join(allowed)}; got {value!r}")


def _check_range(owner: str, key: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high):
        raise ValueError(f"{owner}: {key} must be in [{low}, {high}], got {value}")


class Plateau(Controller):
    """torch ``ReduceLROnPlateau``, exactly: same parameters, defaults and decisions.

    Watches ``metric`` (default ``val_loss``; ``mode`` defaults to ``max`` for
    ``val_acc``). After ``patience`` epochs without an improvement beyond ``threshold``
    the LR is multiplied by ``factor`` (never below ``min_lr``; a change smaller than
    ``eps`` is skipped), then ``cooldown`` epochs pass before bad epochs count again.
    ``patience`` and ``cooldown`` count epochs at any control interval: with k decisions per epoch
    a cut needs ``(patience + 1) * k`` bad decisions in a row (``num_bad_epochs``, despite its
    torch name, then counts decisions).

    Example:
        >>> c = Plateau(patience=0); c.reset(1.0, 10)
        >>> [c.act(EpochMetrics(epoch=e, lr=1.0, train_loss=1.0, val_loss=v)) for e, v in [(1, 1.0), (2, 1.0)]]
        [1.0, 0.1]
    """

    name: ClassVar[str] = "plateau"
    _state_keys: ClassVar[tuple[str, ...]] = ("best", "num_bad_epochs", "cooldown_counter")
    _defaults: ClassVar[dict[str, object]] = {
        "metric": "val_loss", "mode": None, "factor": 0.1, "patience": 10, "threshold": 1e-4,
        "threshold_mode": "rel", "cooldown": 0, "min_lr": 0.0, "eps": 1e-8,
    }

    def __init__(
        self,
        metric: str = "val_loss",
        mode: str | None = None,
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        owner = self.name
        _check_choice(owner, "metric", metric, _METRICS)
        if mode is not None:
            _check_choice(owner, "mode", mode, ("min", "max"))
        _check_choice(owner, "threshold_mode", threshold_mode, ("rel", "abs"))
        if not (0 < factor < 1):
            raise ValueError(f"{owner}: factor must be in (0, 1), got {factor}")
        _check_range(owner, "patience", patience, 0, 10**9)
        _check_range(owner, "cooldown", cooldown, 0, 10**9)
        _check_range(owner, "threshold", threshold, 0.0, 1e9)
        _check_range(owner, "min_lr", min_lr, 0.0, 1e9)
        _check_range(owner, "eps", eps, 0.0, 1e9)
        self.params = {
            "metric": metric, "mode": mode, "factor": factor, "patience": patience, "threshold": threshold,
            "threshold_mode": threshold_mode, "cooldown": cooldown, "min_lr": min_lr, "eps": eps,
        }
        self.metric = metric
        self.mode = mode or ("max" if metric == "val_acc" else "min")
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.threshold_mode, self.cooldown, self.min_lr, self.eps = threshold_mode, cooldown, min_lr, eps
        self.required_metrics = (metric,)
        self._reset()

    def spec(self) -> str:
        return format_spec(self.name, self.params, self._defaults)

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _act(self, metrics: EpochMetrics) -> float:
        current = monitored_value(metrics, self.metric)
        if is_better(current, self.best, self.mode, self.threshold, self.threshold_mode):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs <= (self.patience + 1) * self.decisions_per_epoch - 1:  # k = 1: torch's rule
            return 1.0
        self.cooldown_counter = self.cooldown * self.decisions_per_epoch
        self.num_bad_epochs = 0
        old_lr = metrics.lr
        new_lr = max(old_lr * self.factor, self.min_lr)
        if not (old_lr - new_lr > self.eps):
            return 1.0
        return self.factor if new_lr == old_lr * self.factor else new_lr / old_lr

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.best = float(self.best)


class Rule(Plateau):
    """The seed report's rule: cut the LR by ``factor`` whenever the metric stalls.

    Every epoch, when the monitored metric (default ``val_loss``; ``val_acc`` is
    watched in ``max`` mode) did not improve on the best so far by at least
    ``threshold`` (default 0.01, relative), the LR is multiplied by ``factor``
    (default 0.1), never below ``min_lr``. ``patience`` (default 0) bad epochs are
    tolerated first. It is ReduceLROnPlateau with the seed's settings and no cooldown.

    Example:
        >>> c = Rule(); c.reset(1.0, 10)
        >>> [c.act(EpochMetrics(epoch=e, lr=1.0, train_loss=1.0, val_loss=v)) for e, v in [(1, 1.0), (2, 0.995)]]
        [1.0, 0.1]
    """

    name: ClassVar[str] = "rule"
    _defaults: ClassVar[dict[str, object]] = {
        "metric": "val_loss", "mode": None, "factor": 0.1, "patience": 0, "threshold": 0.01,
        "threshold_mode": "rel", "min_lr": 0.0,
    }

    def __init__(
        self,
        metric: str = "val_loss",
        mode: str | None = None,
        threshold: float = 0.01,
        threshold_mode: str = "rel",
        factor: float = 0.1,
        patience: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(metric=metric, mode=mode, factor=factor, patience=patience, threshold=threshold,
                         threshold_mode=threshold_mode, cooldown=0, min_lr=min_lr, eps=0.0)
        del self.params["cooldown"], self.params["eps"]




class Bold(Controller):
    """The bold driver (Vogl et al. 1988; Battiti 1989), applied once per epoch.

    Multiply the LR by ``up`` when the monitored metric (default ``val_loss``)
    improved on the previous epoch, by ``down`` when it did not; a non-finite metric
    counts as worse. The first epoch has nothing to compare with and keeps the LR.
    The LR stays within [``min_lr``, ``max_lr``] (``max_lr=None``: no upper bound).
    ``up`` and ``down`` are rates per epoch: with k decisions per epoch, each decision compares
    with the previous decision and multiplies by ``up ** (1 / k)`` or ``down ** (1 / k)``, so an
    epoch of improving intervals multiplies the LR by ``up``.

    Example:
        >>> c = Bold(); c.reset(1.0, 10)
        >>> [c.act(EpochMetrics(epoch=e, lr=1.0, train_loss=1.0, val_loss=v)) for e, v in [(1, 1.0), (2, 0.9), (3, 1.2)]]
        [1.0, 1.5, 0.5]
    """

    name: ClassVar[str] = "bold"
    _state_keys: ClassVar[tuple[str, ...]] = ("previous",)
    _defaults: ClassVar[dict[str, object]] = {"metric": "val_loss", "up": 1.5, "down": 0.5, "min_lr": 0.0, "max_lr": None}

    def __init__(self, metric: str = "val_loss", up: float = 1.5, down: float = 0.5,
                 min_lr: float = 0.0, max_lr: float | None = None) -> None:
        super().__init__()
        _check_choice(self.name, "metric", metric, _METRICS)
        _check_range(self.name, "up", up, 1.0, 100.0)
        if not (0 < down <= 1):
            raise ValueError(f"bold: down must be in (0, 1], got {down}")
        _check_range(self.name, "min_lr", min_lr, 0.0, 1e9)
        if max_lr is not None and not (max_lr > min_lr and math.isfinite(max_lr)):
            raise ValueError(f"bold: max_lr must be finite and > min_lr ({min_lr}), got {max_lr}")
        self.params = {"metric": metric, "up": up, "down": down, "min_lr": min_lr, "max_lr": max_lr}
        self.metric, self.up, self.down, self.min_lr, self.max_lr = metric, up, down, min_lr, max_lr
        self.sign = -1.0 if metric == "val_acc" else 1.0
        self.required_metrics = (metric,)
        self.previous: float | None = None

    def spec(self) -> str:
        return format_spec(self.name, self.params, self._defaults)

    def _reset(self) -> None:
        self.previous = None

    def _act(self, metrics: EpochMetrics) -> float:
        value = self.sign * monitored_value(metrics, self.metric)
        previous, self.previous = self.previous, (value if math.isfinite(value) else None)
        k = self.decisions_per_epoch
        up, down = (self.up, self.down) if k == 1 else (self.up ** (1.0 / k), self.down ** (1.0 / k))
        multiplier = float(bold_multiplier(improved=previous is not None and value < previous,
                                           first=previous is None and math.isfinite(value), up=up, down=down))
        lr = metrics.lr
        if not (math.isfinite(lr) and lr > 0):
            return multiplier
        new_lr = min(max(lr * multiplier, self.min_lr), self.max_lr if self.max_lr is not None else math.inf)
        return multiplier if new_lr == lr * multiplier else new_lr / lr


register_controller(Plateau.name, Plateau)
register_controller(Rule.name, Rule)
register_controller(Bold.name, Bold)
