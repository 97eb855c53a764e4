"""Teachers: hand rules written as functions of the observation vector, and as controllers.

A *teacher* decides from the same :class:`~lrpilot.controller.features.ObservationEncoder`
features a learned policy sees, so a network can imitate it exactly (behaviour cloning and
DAgger, :mod:`lrpilot.learn.imitation`). Each one maps a batch of observations ``[n, features]``
to ``n`` LR multipliers:

* ``bold``: the bold driver, with the decision of :class:`~lrpilot.controller.rules.Bold`
  (:func:`~lrpilot.controller.teacher_rules.bold_multiplier`): ×1.5 after an epoch that lowered the
  validation loss, ×0.5 otherwise (and after a non-finite epoch), ×1 after the first epoch.
  ``bold2`` uses ×2 instead of ×1.5. On finite losses it decides exactly as ``Bold`` (tested);
  after a non-finite epoch ``Bold`` starts afresh (×1 on the next finite epoch) while the teacher,
  which sees no "first epoch" in the features there, compares with the clipped loss and halves.
* ``bold-anneal``: the bold driver until ``anneal_at`` (70%) of the budget, then ×0.5 every epoch
  (a short annealing tail, which final accuracy rewards); ``bold-anneal2`` with ×2,
  ``bold-anneal-late`` from 80%.
* ``bold-anneal-adaptive``: from 60% of the budget, an epoch that improved the validation loss by
  less than 3% halves the LR instead of raising it.
* ``bold-anneal-streak``: from 70% of the budget, halve the LR unless the validation loss improved
  in each of the last three epochs (:func:`climbing`).
* ``bold-anneal-streakup``: ``bold-anneal-streak`` with ×2 instead of ×1.5 while :func:`climbing`;
  the teacher of the shipped ``default`` policy.

Every teacher is also an ordinary :class:`~lrpilot.controller.base.Controller`
(:class:`FeatureTeacher`) that encodes its metrics history and applies the rule, registered
under its name (:data:`SPEC_NAMES`; ``bold``'s is ``bold-features``, since ``bold`` is
:class:`~lrpilot.controller.rules.Bold`). With ``acts=a4`` or ``acts=a5`` its multiplier snaps to
the action set ×{0.1, 0.5, 1, 2} or ×{0.1, 0.5, 1, 1.5, 2}, as a cloned policy acts.

Control intervals shorter than an epoch (docs/controller.md, "Control intervals"): a teacher decides
**per decision**, unlike :class:`~lrpilot.controller.rules.Bold`, whose rates are per epoch. The
teachers exist to be imitated by a policy, which sees one observation per decision and answers one
action from a fixed set per decision, so the teacher's labels must be per-decision actions too:
×1.5 (or ×2) after an improving interval, ×0.5 after one that is not, and "three epochs improved"
(:func:`climbing`) reads as three intervals. What stays in budget terms is what the encoder gives
as fractions of the budget: ``progress`` (the annealing points: 70% of the budget at any interval).

Imports only ``numpy`` (deployment stays light).
"""

from __future__ import annotations

from typing import Callable, ClassVar

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import ObservingController
from lrpilot.controller.spec import format_spec, register_controller
from lrpilot.controller.teacher_rules import (
    TEACHERS,
    climbing,
    nearest_action,
    teacher_labels,
    teacher_multipliers,
)
from lrpilot.metrics import EpochMetrics

__all__ = ["TEACHERS", "SPEC_NAMES", "ACTION_SETS", "FeatureTeacher", "climbing", "teacher_multipliers",
           "nearest_action", "teacher_labels"]

SPEC_NAMES: dict[str, str] = {name: "bold-features" if name == "bold" else name for name in TEACHERS}
"""Teacher name -> its controller spec name (``bold`` is :class:`~lrpilot.controller.rules.Bold`)."""

ACTION_SETS: dict[str, str] = {"a4": "0.1,0.5,1,2", "a5": "0.1,0.5,1,1.5,2"}
"""Named action sets of a teacher controller's ``acts``: the default set and the shipped policy's."""

def _action_set(owner: str, acts: str) -> ActionSpec:
    try:
        spec = ActionSpec.parse(ACTION_SETS.get(acts, acts.replace("/", ",")))
    except ValueError:
        spec = None
    if spec is None or spec.kind != "discrete":
        raise ValueError(f"{owner}: acts must be {', '.join(ACTION_SETS)} or discrete multipliers joined by '/' "
                         f"(e.g. 0.1/0.5/1/2), got {acts!r}")
    return spec


class FeatureTeacher(ObservingController):
    """A teacher (:data:`TEACHERS`) as a controller: the metrics history is encoded with
    :class:`~lrpilot.controller.features.ObservationEncoder` every epoch and the rule applied to it.

    ``acts`` (None, ``a4``, ``a5`` or multipliers joined by ``/``) snaps the multiplier to the nearest
    action in log scale, as a policy cloned with that action set acts. The history is part of
    :meth:`state_dict` (JSON-safe). Built from spec strings such as ``bold-anneal-streakup:acts=a5``.
    With several decisions per epoch it applies the rule at every decision (module docstring).

    Example:
        >>> c = from_spec("bold-anneal-streakup"); c.reset(1.0, 10)
        >>> [c.act(EpochMetrics(epoch=e, lr=1.0, train_loss=1.0, val_loss=v)) for e, v in [(1, 1.0), (2, 0.9), (3, 1.2)]]
        [1.0, 1.5, 0.5]
    """

    name: ClassVar[str] = "teacher"

    def __init__(self, teacher: str, acts: str | None = None) -> None:
        super().__init__()
        if teacher not in TEACHERS:
            raise ValueError(f"unknown teacher {teacher!r}; known: {', '.join(TEACHERS)}")
        self.teacher, self.acts = teacher, acts
        self.actions = None if acts is None else _action_set(SPEC_NAMES[teacher], acts)
        self.required_metrics = ("train_loss", "val_loss")

    def spec(self) -> str:
        return format_spec(SPEC_NAMES[self.teacher], {"acts": self.acts}, {"acts": None})

    def _act(self, metrics: EpochMetrics) -> float:
        obs = self._observe(metrics)[None, :]
        if self.actions is None:
            return float(teacher_multipliers(self.teacher, obs)[0])
        return self.actions.to_multiplier(teacher_labels(self.teacher, self.actions, obs)[0])


def _factory(teacher: str) -> Callable[..., FeatureTeacher]:
    """``acts -> FeatureTeacher(teacher, acts)``: the spec-string constructor of one teacher."""

    def make(acts: str | None = None) -> FeatureTeacher:
        return FeatureTeacher(teacher, acts)

    return make


for _teacher, _spec_name in SPEC_NAMES.items():
    register_controller(_spec_name, _factory(_teacher))
