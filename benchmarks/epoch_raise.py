"""Session 27's probe: a learned policy whose raises are rates per epoch at any interval.

Importing this module registers the controller ``epoch-raise:policy=NAME``: the learned policy ``NAME`` acting as it
always does, except that at ``k`` decisions per epoch a raise ``m > 1`` is applied as ``m ** (1 / k)`` (an epoch of
raises multiplies the LR by what one per-epoch raise would), while cuts and holds act at once. With one decision per
epoch it is the policy itself, decision for decision. It is the semantics `bold` has at intervals below an epoch
(docs/controller.md, "Control intervals"), applied to a learned policy, to test whether the overshoot of a pretrained
model's LR at interval 0.25 (issue #16's bar (c), session 26) is the raises' rate.

    PYTHONPATH=benchmarks lrpilot evaluate-controller epoch-raise:policy=default --import epoch_raise \\
        --import minilm_products --tasks minilm-products --lrs 1e-5,1e-4 --seeds 2 --epochs 5 --interval 0.25 ...
"""

from __future__ import annotations

from typing import Any

from lrpilot.controller.base import Controller
from lrpilot.controller.policy import load_policy
from lrpilot.controller.spec import format_spec, register_controller
from lrpilot.metrics import EpochMetrics


class EpochRaise(Controller):
    """``policy``'s decisions with raises spread over the epoch: ``m ** (k ** -power)`` for ``m > 1`` at ``k``
    decisions per epoch (``power`` 1: per-epoch rates; 0.5: halfway on a log scale; 0: the policy itself)."""

    name = "epoch-raise"

    def __init__(self, policy: str = "default", power: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= power <= 1.0:
            raise ValueError(f"epoch-raise: power must be in [0, 1], got {power!r}")
        self.policy, self.power = policy, power
        self.inner = load_policy(policy)
        self.required_metrics = self.inner.required_metrics

    def spec(self) -> str:
        return format_spec(self.name, {"policy": self.policy, "power": self.power}, {"power": 1.0})

    def _reset(self) -> None:
        self.inner.reset(self.initial_lr, self.total_epochs, self.decisions_per_epoch)

    def _act(self, metrics: EpochMetrics) -> float:
        multiplier = float(self.inner.act(metrics))
        exponent = self.decisions_per_epoch ** -self.power
        return multiplier ** exponent if multiplier > 1.0 else multiplier

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.inner.load_state_dict(state["inner"])


register_controller(EpochRaise.name, EpochRaise)
