"""Classic schedules as controllers: ``constant``, ``step`` and ``cosine``.

They ignore the metrics (so a non-finite metric changes nothing) and follow the
epoch count: after the k-th epoch, ``act`` returns the multiplier that takes the LR
to the schedule's value for epoch k (0-based), exactly like calling the torch
scheduler's ``step()`` once per epoch.

With control intervals shorter than an epoch (``decisions_per_epoch`` > 1) every parameter keeps
its meaning in epochs (docs/controller.md, "Control intervals"): ``step`` cuts at the decision that
ends epoch ``step_size``, ``2 * step_size``, ...; ``cosine`` follows the same curve over the budget,
evaluated at every decision, so at each epoch's end it sets the LR that it sets per epoch.
"""

from __future__ import annotations

import math
from typing import ClassVar

from lrpilot.controller.base import Controller
from lrpilot.controller.spec import format_spec, register_controller
from lrpilot.metrics import EpochMetrics

__all__ = ["Constant", "Step", "Cosine"]


class Constant(Controller):
    """Keep the learning rate: ``act`` always returns 1.

    Example:
        >>> c = Constant(); c.reset(1e-3, 10)
        >>> c.act(EpochMetrics(epoch=1, lr=1e-3, train_loss=1.0, val_loss=1.0))
        1.0
    """

    name: ClassVar[str] = "constant"

    def _act(self, metrics: EpochMetrics) -> float:
        return 1.0


class Step(Controller):
    """torch ``StepLR``: multiply the LR by ``gamma`` every ``step_size`` epochs.

    ``step_size=None`` (the default) means a third of the epoch budget (at least 1),
    so the default decays twice in any budget. ``step_size`` counts epochs whatever the control
    interval: with several decisions per epoch the cut comes at the decision that ends the epoch.

    Example:
        >>> c = Step(step_size=2, gamma=0.5); c.reset(1.0, 6)
        >>> [c.act(EpochMetrics(epoch=e, lr=1.0, train_loss=1.0)) for e in range(1, 5)]
        [1.0, 0.5, 1.0, 0.5]
    """

    name: ClassVar[str] = "step"

    def __init__(self, step_size: int | None = None, gamma: float = 0.1) -> None:
        super().__init__()
        if step_size is not None and step_size < 1:
            raise ValueError(f"step: step_size must be >= 1, got {step_size}")
        if not (0 < gamma <= 1e6 and math.isfinite(gamma)):
            raise ValueError(f"step: gamma must be in (0, 1e6], got {gamma}")
        self.step_size = step_size
        self.gamma = gamma

    def spec(self) -> str:
        return format_spec(self.name, {"step_size": self.step_size, "gamma": self.gamma}, {"step_size": None, "gamma": 0.1})

    def _act(self, metrics: EpochMetrics) -> float:
        size = (self.step_size or max(1, self.total_epochs // 3)) * self.decisions_per_epoch
        return self.gamma if self.epochs_seen % size == 0 else 1.0


class Cosine(Controller):
    """torch ``CosineAnnealingLR`` with ``T_max`` = the epoch budget.

    The LR for epoch k (0-based) is ``eta_min + (initial_lr - eta_min) * (1 + cos(pi k / T)) / 2``;
    ``act`` returns the ratio of that target to the LR the epoch ran with. After the
    last epoch it returns 1 (there is no next epoch to schedule). With several decisions per
    epoch, k and T count decisions (torch's scheduler stepped every interval with ``T_max`` = the
    number of decisions): the period is still the budget, and each epoch ends at the same LR.

    Example:
        >>> c = Cosine(); c.reset(1.0, 2)
        >>> round(c.act(EpochMetrics(epoch=1, lr=1.0, train_loss=1.0)), 6)
        0.5
    """

    name: ClassVar[str] = "cosine"

    def __init__(self, eta_min: float = 0.0) -> None:
        super().__init__()
        if not (eta_min >= 0 and math.isfinite(eta_min)):
            raise ValueError(f"cosine: eta_min must be a finite number >= 0, got {eta_min}")
        self.eta_min = eta_min

    def spec(self) -> str:
        return format_spec(self.name, {"eta_min": self.eta_min}, {"eta_min": 0.0})

    def _act(self, metrics: EpochMetrics) -> float:
        k, total = self.epochs_seen, self.total_decisions
        if k >= total:
            return 1.0
        target = self.eta_min + (self.initial_lr - self.eta_min) * (1 + math.cos(math.pi * k / total)) / 2
        current = metrics.lr if math.isfinite(metrics.lr) and metrics.lr > 0 else self.initial_lr
        return target / current


register_controller(Constant.name, Constant)
register_controller(Step.name, Step)
register_controller(Cosine.name, Cosine)
