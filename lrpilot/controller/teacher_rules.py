"""The teachers' rules as pure functions of the observation vector (see :mod:`lrpilot.controller.teachers`).

Kept apart from :mod:`~lrpilot.controller.teachers` (which registers each teacher as a controller
spec) so that a learned policy with a base rule (:mod:`lrpilot.controller.policy`, a residual policy)
can apply one without importing the spec registry, which imports the policy module in turn. Also home
of :func:`bold_multiplier`, the bold driver's decision shared with :class:`~lrpilot.controller.rules.Bold`.

Imports only ``numpy`` (deployment stays light).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import FEATURE_INDEX

__all__ = ["TEACHERS", "bold_multiplier", "climbing", "teacher_multipliers", "nearest_action", "teacher_labels"]

def bold_multiplier(improved: Any, first: Any, up: float = 1.5, down: float = 0.5) -> np.ndarray:
    """The bold driver's decision, elementwise: ×1 at the ``first`` epoch, else ×``up`` where the monitored
    loss ``improved`` on the previous epoch and ×``down`` where it did not.

    Booleans or boolean arrays in, float64 multipliers out (a 0-d array for scalars). The callers fold
    non-finite metrics into the flags: :class:`Bold` compares with ``<`` (a NaN never improved), the
    feature teachers clear both flags when the observation's ``nonfinite`` is set.

    Example:
        >>> bold_multiplier(np.array([False, True, False]), np.array([True, False, False])).tolist()
        [1.0, 1.5, 0.5]
    """
    return np.where(first, 1.0, np.where(improved, up, down))


_I = FEATURE_INDEX


def climbing(obs: np.ndarray) -> np.ndarray:
    """True where the validation loss improved in each of the last three epochs (a steady climb)."""
    return (obs[:, _I["val_loss_log_change"]] < 0) & (obs[:, _I["val_loss_log_change_lag1"]] < 0) \
        & (obs[:, _I["val_loss_log_change_lag2"]] < 0)


def _first_epoch(obs: np.ndarray) -> np.ndarray:
    """True at the first epoch of an episode: no change yet (exactly 0) and no LR history."""
    return (obs[:, _I["log_lr_ratio"]] == 0) & (obs[:, _I["log_lr_change"]] == 0) \
        & (obs[:, _I["val_loss_log_change"]] == 0) & (obs[:, _I["val_loss_log_change_lag1"]] == 0)


def _bold(obs: np.ndarray, up: float = 1.5, down: float = 0.5) -> np.ndarray:
    finite = ~(obs[:, _I["nonfinite"]] > 0)  # a non-finite epoch neither starts nor improves: x down
    improved = (obs[:, _I["val_loss_log_change"]] < 0) & finite
    return bold_multiplier(improved, _first_epoch(obs) & finite, up=up, down=down)


def _bold_anneal(obs: np.ndarray, anneal_at: float = 0.7, up: float = 1.5) -> np.ndarray:
    out = _bold(obs, up=up)
    return np.where(obs[:, _I["progress"]] >= anneal_at, 0.5, out)


def _bold_anneal_adaptive(obs: np.ndarray, anneal_at: float = 0.6, fast: float = -0.03) -> np.ndarray:
    """Bold driver; from ``anneal_at`` of the budget, an epoch that improved the validation loss by
    less than 3% (log change > ``fast``) halves the LR instead of raising it (a run still far from
    converged, e.g. one started at a much too small LR, keeps raising it)."""
    out = _bold(obs)
    late = obs[:, _I["progress"]] >= anneal_at
    slow = obs[:, _I["val_loss_log_change"]] > fast
    return np.where(late & slow, 0.5, out)


def _bold_anneal_streak(obs: np.ndarray, anneal_at: float = 0.7) -> np.ndarray:
    """Bold driver; from ``anneal_at`` of the budget, halve the LR every epoch *unless* the validation
    loss improved in each of the last three epochs (a run still climbing from a too-small LR keeps
    raising it; one oscillating at the edge of stability is annealed)."""
    out = _bold(obs)
    late = obs[:, _I["progress"]] >= anneal_at
    return np.where(late & ~climbing(obs), 0.5, out)


def _bold_anneal_streakup(obs: np.ndarray) -> np.ndarray:
    """``bold-anneal-streak``, but ×2 instead of ×1.5 while the last three epochs all improved: a run
    climbing steadily out of a much too small LR doubles it, one at the edge of stability (improving
    and worsening in turn) only goes ×1.5 / ×0.5. Chosen on training-distribution tasks (see
    ``docs/controller.md``); the shipped policy imitates it with the actions ×{0.1, 0.5, 1, 1.5, 2}."""
    out = _bold_anneal_streak(obs)
    return np.where(climbing(obs) & (out == 1.5), 2.0, out)


TEACHERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bold-anneal-streakup": _bold_anneal_streakup,
    "bold-anneal-streak": _bold_anneal_streak,
    "bold-anneal-adaptive": _bold_anneal_adaptive,
    "bold": _bold,
    "bold2": lambda obs: _bold(obs, up=2.0),
    "bold-anneal": _bold_anneal,
    "bold-anneal2": lambda obs: _bold_anneal(obs, up=2.0),
    "bold-anneal-late": lambda obs: _bold_anneal(obs, anneal_at=0.8),
}
"""Teacher name (as in ``train-controller --bc-from``) -> ``obs [n, features] -> multipliers [n]``."""


def teacher_multipliers(name: str, obs: np.ndarray) -> np.ndarray:
    """The teacher's LR multiplier for each row of ``obs`` ([n, features])."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS)}")
    return TEACHERS[name](np.asarray(obs, dtype=np.float64))


def nearest_action(spec: ActionSpec, multipliers: np.ndarray) -> np.ndarray:
    """Index of the discrete action whose multiplier is nearest in log scale."""
    logs = np.log(np.asarray(spec.multipliers))
    return np.abs(np.log(multipliers)[:, None] - logs[None, :]).argmin(axis=1)


def teacher_labels(teacher: str, spec: ActionSpec, obs: np.ndarray) -> np.ndarray:
    """The teacher's action (index into ``spec``) for each row of ``obs``."""
    return nearest_action(spec, teacher_multipliers(teacher, obs))
