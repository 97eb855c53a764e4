"""Population environments: many LRControlEnv-like episodes trained in lockstep in one process.

One engine, :class:`~lrpilot.envs.population.core.PopulationCore` (in-process, or split over
worker processes by :mod:`lrpilot.envs.population.workers`), and two thin wrappers named after
the API each serves:

* :class:`PopulationGymVectorEnv` (``gym_vector.py``): a ``gymnasium.vector.VectorEnv``
  (autoreset mode ``SAME_STEP``);
* :class:`PopulationSB3VecEnv` (``sb3_vec.py``): a ``stable_baselines3`` ``VecEnv`` (SB3's
  auto-reset semantics). It imports stable-baselines3, so it loads on first access.

Both take the keyword arguments of :class:`PopulationConfig` (``num_envs``, ``groups``,
``distribution``, ``spares``, ``group_lifetime``) plus every field of
:class:`~lrpilot.envs.config.EnvConfig` (``task``, ``initial_lr``, ``epochs``, ``actions``,
``reward``, ``lr_bounds``...), validated with a ``ValueError`` naming the field.

``PopulationVectorEnv`` and ``PopulationVecEnv`` are the names these classes had before
0.1.1 (three letters apart); they remain as aliases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lrpilot.envs.population.core import PopulationConfig
from lrpilot.envs.population.gym_vector import PopulationGymVectorEnv

if TYPE_CHECKING:
    from lrpilot.envs.population.sb3_vec import PopulationSB3VecEnv

__all__ = ["PopulationGymVectorEnv", "PopulationSB3VecEnv", "PopulationConfig"]

PopulationVectorEnv = PopulationGymVectorEnv


def __getattr__(name: str) -> Any:
    if name in ("PopulationSB3VecEnv", "PopulationVecEnv"):  # imports stable-baselines3, so only on demand
        from lrpilot.envs.population.sb3_vec import PopulationSB3VecEnv

        return PopulationSB3VecEnv
    raise AttributeError(f"module 'lrpilot.envs.population' has no attribute {name!r}")
