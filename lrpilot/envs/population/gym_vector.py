"""`PopulationGymVectorEnv`: the population environment as a Gymnasium ``VectorEnv``."""

from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from lrpilot.envs.population.core import PopulationConfig, StepResult
from lrpilot.envs.population.doc import POPULATION_DOC
from lrpilot.envs.population.workers import make_core
from lrpilot.envs.spaces import action_space, observation_space

__all__ = ["PopulationGymVectorEnv"]



def _no_none(value: Any) -> Any:
    """Gymnasium batches infos into typed arrays, which cannot hold None: None becomes NaN."""
    if isinstance(value, dict):
        return {k: _no_none(v) for k, v in value.items()}
    return math.nan if value is None else value


class PopulationGymVectorEnv(gym.vector.VectorEnv):
    __doc__ = """A Gymnasium ``VectorEnv`` of lockstep-trained learning-rate-control episodes.

    Autoreset mode: ``SAME_STEP`` (``metadata["autoreset_mode"]``). When a member's episode
    ends, ``step`` already returns the next episode's first observation for it, with
    ``infos["final_obs"][i]`` and ``infos["final_info"]`` holding the ended episode's last
    observation and info; the top-level infos of that member are the new episode's.
    Infos are Gymnasium's dict of arrays with ``_key`` masks; missing metric values
    (``None`` in ``LRControlEnv``) read as NaN.
    """ + POPULATION_DOC + """
    Example:
        >>> envs = PopulationGymVectorEnv(num_envs=8, task="teacher-mlp", initial_lr=(1e-4, 1e-1), epochs=10)
        >>> obs, infos = envs.reset(seed=0)
        >>> obs, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, **kwargs: Any) -> None:
        self.config = PopulationConfig.from_kwargs(**kwargs)
        self.core = make_core(self.config)
        self.num_envs = self.config.num_envs
        encoder = self.core.encoder
        self.single_observation_space = observation_space(encoder)
        self.single_action_space = action_space(self.core.action_spec)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Draw every group and episode afresh from ``seed`` (options are not supported)."""
        if options:
            raise ValueError(f"PopulationGymVectorEnv.reset takes no options, got {sorted(options)}")
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        obs, infos = self.core.reset(int(self.np_random.integers(2**63 - 1)))
        batched: dict[str, Any] = {}
        for i, info in enumerate(infos):
            batched = self._add_info(batched, _no_none(info), i)
        return obs, batched

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One epoch for every member (see the class docstring for the autoreset)."""
        return self._collect(self.core.step(actions))

    def step_multipliers(self, multipliers: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                        dict]:
        """Like :meth:`step`, with each member's LR multiplier given directly (for hand-written controllers)."""
        return self._collect(self.core.step_multipliers(multipliers))

    def close_extras(self, **kwargs: Any) -> None:
        """Stop the worker processes, if any."""
        if hasattr(self.core, "close"):
            self.core.close()

    def _collect(self, results: list[StepResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        infos: dict[str, Any] = {}
        for i, r in enumerate(results):
            if r.final_obs is not None:
                infos = self._add_info(infos, {"final_obs": r.final_obs, "final_info": _no_none(r.info)}, i)
                infos = self._add_info(infos, _no_none(r.reset_info), i)
            else:
                infos = self._add_info(infos, _no_none(r.info), i)
        obs = np.stack([r.obs for r in results]).astype(np.float32, copy=False)
        rewards = np.array([r.reward for r in results], dtype=np.float64)
        terminated = np.array([r.terminated for r in results], dtype=np.bool_)
        truncated = np.array([r.truncated for r in results], dtype=np.bool_)
        return obs, rewards, terminated, truncated, infos


