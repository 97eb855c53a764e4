"""`PopulationConfig`: what a population environment trains, validated field by field.

Kept apart from :mod:`lrpilot.envs.population.core` (the engine that plays the episodes) because
the configuration is a concept of its own: the wrappers, the worker processes and the engine all
take one, and reading what can be configured should not mean reading the engine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrpilot.envs.config import EnvConfig
from lrpilot.training.distribution import TaskDistribution

__all__ = ["PopulationConfig", "REDRAWS"]

REDRAWS = ("cut", "drain")
"""What a group's redraw does to its running episodes (:attr:`PopulationConfig.redraw`)."""

_DRAWN_FIELDS = ("task", "initial_lr", "epochs", "epoch_examples")


def _positive_int(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"PopulationConfig: {name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class PopulationConfig:
    """What a population environment trains; ``env`` holds every :class:`EnvConfig` field."""

    num_envs: int = 16
    """Members (environments, parallel episodes) in all."""
    groups: int = 1
    """Populations (tasks) the members are split over, as evenly as possible."""
    distribution: TaskDistribution | None = None
    """Draw each group's task and each episode's LR and budget from this; None: from ``env``'s fields."""
    spares: int | None = None
    """Ready episodes kept per group (None: a quarter of the group's members, at least 2)."""
    group_lifetime: int | None = 256
    """Steps after which a group's task is redrawn (how: :attr:`redraw`); None: never."""
    redraw: str = "cut"
    """What a redraw does to the episodes still running: ``cut`` truncates them (``info["group_redrawn"]``);
    ``drain`` lets them finish on the old task while every member whose episode ends starts its next one
    on the new task (two populations per group until the old one drains; no episode is ever cut short)."""
    workers: int = 1
    """Processes the groups are spread over (each runs one torch thread); 1: everything in this process."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Task names, LR range, budget, actions, reward, LR bounds, divergence, seeds, device."""
    twin: str | None = None
    """A reference controller's spec (``"bold"``, ``"bold-anneal-streakup"``, ``"policy:default"``): every
    episode gets a twin driven by it, and each step's reward is the agent's ``log_val_loss`` improvement minus
    the twin's (:mod:`lrpilot.envs.population.twins`); needs ``reward="log_val_loss"``. None: no twins."""

    def __post_init__(self) -> None:
        _positive_int("num_envs", self.num_envs)
        _positive_int("groups", self.groups)
        if self.groups > self.num_envs:
            raise ValueError(f"PopulationConfig: groups must be <= num_envs ({self.num_envs}), got {self.groups}")
        _positive_int("workers", self.workers)
        if self.workers > self.groups:
            raise ValueError(f"PopulationConfig: workers must be <= groups ({self.groups}), got {self.workers}")
        if self.spares is not None:
            _positive_int("spares", self.spares, low=0)
        if self.group_lifetime is not None:
            _positive_int("group_lifetime", self.group_lifetime)
        if self.redraw not in REDRAWS:
            raise ValueError(f"PopulationConfig: redraw must be one of {', '.join(REDRAWS)}, got {self.redraw!r}")
        if self.distribution is not None and not isinstance(self.distribution, TaskDistribution):
            raise ValueError(f"PopulationConfig: distribution must be a TaskDistribution or None, "
                             f"got {type(self.distribution).__name__}")
        if not isinstance(self.env, EnvConfig):
            raise ValueError(f"PopulationConfig: env must be an EnvConfig, got {type(self.env).__name__}")
        if self.distribution is not None and self.distribution.intervals != (1.0,) and self.env.interval is not None:
            raise ValueError("PopulationConfig: the distribution draws the intervals; do not pass interval too")
        if self.twin is not None:
            self._check_twin()

    def _check_twin(self) -> None:
        from lrpilot.envs.population.twins import twin_controller

        if not isinstance(self.twin, str) or not self.twin.strip():
            raise ValueError(f"PopulationConfig: twin must be a controller spec string or None, got {self.twin!r}")
        if self.env.reward != "log_val_loss":
            raise ValueError(f"PopulationConfig: twin needs reward='log_val_loss' (the twin's improvement is "
                             f"subtracted from it), got reward={self.env.reward!r}")
        try:
            twin_controller(self.twin, self.env.undo)
        except ValueError as exc:
            raise ValueError(f"PopulationConfig: twin: {exc}") from None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "PopulationConfig":
        """Population fields by name; every other keyword goes to :class:`EnvConfig`."""
        own = {f.name for f in dataclasses.fields(cls)} - {"env"}
        env_kwargs = {k: v for k, v in kwargs.items() if k not in own}
        if kwargs.get("distribution") is not None and set(env_kwargs) & set(_DRAWN_FIELDS):
            raise ValueError(f"PopulationConfig: with a distribution, {sorted(set(env_kwargs) & set(_DRAWN_FIELDS))} "
                             "come from the distribution; do not pass them")
        return cls(env=EnvConfig(**env_kwargs), **{k: v for k, v in kwargs.items() if k in own})
