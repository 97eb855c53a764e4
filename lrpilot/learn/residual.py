"""Residual policies (issue #16): the LR multiplier is a base rule's multiplier times a learned residual.

The base rule is a teacher (:data:`~lrpilot.controller.teacher_rules.TEACHERS`, e.g.
``bold-anneal-streakup``, the rule behind the shipped ``default``): a function of the same observation
the policy sees. The policy's actions are the residual multipliers (the recipe's action set, e.g.
×{0.1, 0.5, 1, 1.5, 2}); the environment applies ``base(obs) × residual[action]``. Training starts at
the rule: :func:`start_at_identity` biases the action head so that ×1 is the most likely action (the
greedy policy *is* the rule before the first update, and sampling explores around it). The exported
policy file records the base (card ``base``, :mod:`lrpilot.controller.policy`) and deploys as one
controller.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.base import UNDO
from lrpilot.controller.teacher_rules import TEACHERS, teacher_multipliers
from lrpilot.envs.population.core import action_multipliers

__all__ = ["ResidualVecEnv", "start_at_identity", "IDENTITY_LOGIT", "check_base"]

IDENTITY_LOGIT = 3.0
"""The ×1 action's logit bias at the start (others 0): with 5 actions, ×1 is sampled 83% of the time."""


def check_base(base: str, actions: str) -> ActionSpec:
    """The residual action set of ``actions`` (discrete, with ×1); ``ValueError`` for an unknown base or a
    set without ×1 (a residual policy must be able to agree with its rule)."""
    if base not in TEACHERS:
        raise ValueError(f"unknown base rule {base!r}; known: {', '.join(TEACHERS)}")
    spec = ActionSpec.parse(actions)
    if spec.kind != "discrete" or 1.0 not in spec.multipliers:
        raise ValueError(f"a residual policy needs a discrete action set with x1, got {actions!r}")
    return spec


def start_at_identity(model: Any, spec: ActionSpec, logit: float = IDENTITY_LOGIT) -> None:
    """Make ×1 the most likely action of an SB3 PPO model's fresh action head (bias ``logit``, others 0)."""
    import torch

    head = model.policy.action_net
    with torch.no_grad():
        head.bias.zero_()
        head.bias[spec.multipliers.index(1.0)] = logit


class ResidualVecEnv(VecEnvWrapper):
    """Wraps a :class:`~lrpilot.envs.population.PopulationSB3VecEnv`: action ``a`` of member ``i`` becomes
    the multiplier ``base(obs_i) × residual[a]`` (or undo, for the undo action of a set that has one)."""

    def __init__(self, venv: Any, base: str, spec: ActionSpec) -> None:
        super().__init__(venv)
        self.base, self.residual = base, spec
        self.obs: np.ndarray | None = None
        self.decisions: list[Any] | None = None

    def reset(self) -> np.ndarray:
        self.obs = self.venv.reset()
        return self.obs

    def step_async(self, actions: np.ndarray) -> None:
        if self.obs is None:
            raise RuntimeError("ResidualVecEnv stepped before reset()")
        rule = teacher_multipliers(self.base, self.obs)
        self.decisions = [d if d is UNDO else float(rule[i]) * d
                          for i, d in enumerate(action_multipliers(self.residual, actions, len(rule)))]

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self.decisions is None:
            raise RuntimeError("ResidualVecEnv.step_wait() called without step_async()")
        obs, rewards, dones, infos = self.venv.step_multipliers(self.decisions)
        self.obs, self.decisions = obs, None
        return obs, rewards, dones, infos
