"""The bookkeeping of a population environment's groups (:mod:`lrpilot.envs.population.core`).

A :class:`Group` is one :class:`~lrpilot.training.population_trainer.Population` (one task) and which
of its slots plays which member's episode: the slots playing now, the ready episodes (first interval
trained) and the idle slots, with the twins in the second half of the slots when there are twins.
:class:`StepResult` is one member's step as the core returns it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lrpilot.envs.population.twins import Twins
from lrpilot.metrics import EpochMetrics
from lrpilot.training.population_trainer import Population
from lrpilot.training.task import Task

__all__ = ["Episode", "Group", "StepResult", "train_interval"]


@dataclass
class Episode:
    """One episode of a slot: what it was drawn with."""


    initial_lr: float
    epochs: int
    seed: int


@dataclass
class StepResult:
    """One member's step: the Gymnasium 5-tuple plus, when its episode ended, the final obs/info and reset info."""

    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    final_obs: np.ndarray | None = None
    reset_info: dict[str, Any] | None = None


class Group:
    """One population and the bookkeeping of which slot plays which member's episode."""

    def __init__(self, index: int, task: Task, population: Population, episodes: list[Episode],
                 members: Sequence[int], spares: int, age: int = 0, twins: Twins | None = None) -> None:
        self.index, self.task, self.population, self.episodes = index, task, population, episodes
        self.twins = twins
        self.members = [int(m) for m in members]
        self.spares = spares
        self.slot_of = {env: j for j, env in enumerate(self.members)}
        self.active = set(self.members)
        """The members whose episodes run in this population (with ``redraw="drain"``, a draining old
        population and its successor split them)."""
        started = len(self.members) + spares
        self.ready = deque(range(len(self.members), started))
        self.idle = list(range(len(episodes) - 1, started - 1, -1))  # popped from the end: lowest first (no twins)
        self.age = age

    def with_twins(self, slots: Sequence[int]) -> list[int]:
        """``slots`` followed by their twins' slots (without twins: ``slots``)."""
        slots = list(slots)
        return slots + [self.twins.slot(s) for s in slots] if self.twins is not None else slots


def train_interval(population: Population, members: Sequence[int]) -> list[EpochMetrics]:
    """One interval of ``members``: ``run_epoch`` with the default interval (as always), else ``run_interval``."""
    if population.intervals_per_epoch == 1:
        return population.run_epoch(members)
    return population.run_interval(members)
