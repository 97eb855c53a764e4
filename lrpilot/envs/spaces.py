"""Gymnasium spaces of the controller's action and observation specs.

:class:`~lrpilot.controller.actions.ActionSpec` and
:class:`~lrpilot.controller.features.ObservationEncoder` live in :mod:`lrpilot.controller`,
which deployment imports without gymnasium; the spaces they define are built here.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import ObservationEncoder

__all__ = ["action_space", "observation_space"]


def action_space(spec: ActionSpec) -> spaces.Space:
    """``Discrete(len(multipliers))`` (one more with the undo action), or ``Box(-1, 1, (1,), float32)``
    for a continuous spec."""
    if spec.kind == "discrete":
        return spaces.Discrete(spec.size)
    return spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)


def observation_space(encoder: ObservationEncoder) -> spaces.Box:
    """The ``Box`` of the encoder's features, each within its documented clip range."""
    return spaces.Box(low=encoder.low, high=encoder.high, dtype=np.float32)
