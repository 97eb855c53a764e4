"""Reference twins: a reward that says "better than the reference controller".

With ``PopulationConfig(twin=SPEC)`` every episode of a population environment has a *twin*: another
member of the same population with the same task, initial LR, session seed (so the same
initialisation and the same data order) and budget, driven by the reference controller ``SPEC``
(``bold``, ``rule``, ``bold-anneal-streakup``, any spec) for the same number of decisions. Slot ``j``'s
twin is slot ``j + offset``. Both train their first interval at the same LR from the same weights, so
they start from the same validation loss.

Each step's reward is the agent's improvement minus the twin's over the same step, both measured as
``log_val_loss`` rewards are (the log of the validation loss before the step minus after). The sum of
an episode's rewards is therefore ``log(twin's final val loss) - log(agent's final val loss)``: the
objective is the final validation log-loss, relative to the reference. Edge cases:

* **The agent diverges**: the step that ends its episode earns ``divergence_penalty`` (as without a
  twin) minus the twin's improvement in that step; an interval the agent may still undo earns 0 minus
  the twin's improvement, and the undo step is measured from the interval before the undone one, so
  the sum still telescopes.
* **The agent undoes**: the twin goes on (an undone interval counts against both budgets).
* **The twin diverges**: it stops training (it is frozen at its last finite validation loss, which is
  its final one) and improves by 0 from then on, unless its controller undoes the interval (a
  ``+guard`` twin, in an environment with ``undo=True``).

Cost: twice the members trained per step (the twins are ordinary members of the same vectorised
population), so about half the steps per second, and twice the population's memory.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from lrpilot.controller import Controller, from_spec
from lrpilot.controller.base import Undo
from lrpilot.envs.lr_control import UNDO_LR_FACTOR
from lrpilot.metrics import EpochMetrics

if TYPE_CHECKING:
    from lrpilot.training.population_trainer import Population

__all__ = ["Twins", "twin_controller", "log_progress"]


def twin_controller(spec: str, undo: bool) -> Controller:
    """The reference controller ``spec``; one that must undo needs ``undo=True`` (ValueError, one line)."""
    controller = from_spec(spec)
    if controller.may_undo and not undo:
        if not controller.undo_optional:
            raise ValueError(f"twin controller {spec!r} undoes; build the environment with undo=True")
        controller.disable_undo()
    return controller


def log_progress(before: EpochMetrics | None, after: EpochMetrics) -> float:
    """``log(before.val_loss) - log(after.val_loss)``; 0 without a finite ``before`` or ``after``."""
    if before is None or not (math.isfinite(before.val_loss) and math.isfinite(after.val_loss)):
        return 0.0
    return math.log(max(before.val_loss, 1e-12)) - math.log(max(after.val_loss, 1e-12))


class Twins:
    """The twins of one group's slots: their controllers, their decisions, their progress per step."""

    def __init__(self, spec: str, offset: int, intervals_per_epoch: int, undo: bool) -> None:
        self.spec, self.offset, self.intervals_per_epoch, self.undo = spec, offset, intervals_per_epoch, undo
        self.controllers: dict[int, Controller] = {}
        self._before: dict[int, EpochMetrics | None] = {}
        self.frozen: set[int] = set()

    def slot(self, slot: int) -> int:
        """The twin of agent slot ``slot``."""
        return slot + self.offset

    def start(self, slots: Sequence[int], initial_lrs: Sequence[float], epochs: Sequence[int]) -> None:
        """New episodes in ``slots``: fresh reference controllers (their twins are reset by the caller)."""
        for slot, lr, budget in zip(slots, initial_lrs, epochs):
            controller = twin_controller(self.spec, self.undo)
            controller.reset(float(lr), int(budget), self.intervals_per_epoch)
            self.controllers[slot] = controller
            self.frozen.discard(slot)

    def decide(self, population: "Population", slots: Sequence[int]) -> list[int]:
        """Apply each twin's reference decision on its last interval; the twin slots to train this step."""
        undoing, cuts, scaled, factors, train = [], [], [], [], []
        for slot in slots:
            twin = self.slot(slot)
            history = population.history[twin]
            self._before[slot] = next((m for m in reversed(history) if not m.diverged), None)
            if slot in self.frozen:
                continue
            controller, last = self.controllers[slot], history[-1]
            decision: Any = controller.act(last) if (controller.may_undo or not last.diverged) else None
            if isinstance(decision, Undo):
                undoing.append(twin)
                cuts.append(decision.lr_factor(UNDO_LR_FACTOR))
            elif last.diverged:
                self.frozen.add(slot)  # its final val loss is its last finite one
                continue
            else:
                scaled.append(twin)
                factors.append(float(decision))
            train.append(twin)
        if undoing:
            population.undo(undoing, cuts)
        if scaled:
            population.scale_lr(scaled, factors)
        return train

    def progress(self, population: "Population", slot: int, trained: bool) -> float:
        """The twin's ``log_val_loss`` improvement in this step (0 when it did not train or diverged)."""
        if not trained:
            return 0.0
        after = population.history[self.slot(slot)][-1]
        return 0.0 if after.diverged else log_progress(self._before.get(slot), after)

    def final_test(self, population: "Population", slot: int) -> dict[str, Any]:
        """The twin's test loss and accuracy at the episode's end (None for a twin that diverged)."""
        if slot in self.frozen or population.history[self.slot(slot)][-1].diverged:
            return {"loss": None, "acc": None}
        test = population.evaluate("test", [self.slot(slot)])[0]
        return {"loss": test["loss"], "acc": test["acc"]}

    def final(self, population: "Population", slot: int) -> dict[str, Any]:
        """The twin's last finite validation loss and accuracy (what the agent's episode is compared with)."""
        last = next((m for m in reversed(population.history[self.slot(slot)]) if not m.diverged and not m.undone), None)
        if last is None:
            return {"val_loss": None, "val_acc": None, "lr": None}
        return {"val_loss": last.val_loss, "val_acc": last.val_acc, "lr": last.lr}
