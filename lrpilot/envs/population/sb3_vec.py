"""`PopulationSB3VecEnv`: the population environment as a stable-baselines3 ``VecEnv``.

Imported on demand (``from lrpilot.envs.population import PopulationSB3VecEnv``), so that
the Gymnasium side never imports stable-baselines3.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from lrpilot.envs.population.core import PopulationConfig, StepResult
from lrpilot.envs.population.doc import POPULATION_DOC
from lrpilot.envs.population.workers import make_core
from lrpilot.envs.spaces import action_space, observation_space

__all__ = ["PopulationSB3VecEnv"]


class PopulationSB3VecEnv(VecEnv):
    __doc__ = """A stable-baselines3 ``VecEnv`` of lockstep-trained learning-rate-control episodes.

    SB3 semantics: ``step_wait`` returns ``(obs, rewards, dones, infos)`` with
    ``dones = terminated or truncated``; a member whose episode ended is already reset,
    its last observation is ``infos[i]["terminal_observation"]``,
    ``infos[i]["TimeLimit.truncated"]`` is True for a truncation (budget used up or group
    redrawn) and the new episode's info is in ``reset_infos[i]``. ``seed(s)`` applies at the
    next ``reset()`` (the whole population draws from seed ``s``). Wrap it in
    ``VecMonitor`` for episode statistics.
    """ + POPULATION_DOC + """
    Example:
        >>> from stable_baselines3 import PPO
        >>> venv = PopulationSB3VecEnv(num_envs=16, task="teacher-mlp", initial_lr=(1e-4, 1e-1), epochs=10)
        >>> model = PPO("MlpPolicy", venv, n_steps=32).learn(1024)
    """

    def __init__(self, **kwargs: Any) -> None:
        self.config = PopulationConfig.from_kwargs(**kwargs)
        self.core = make_core(self.config)
        self.render_mode = None
        super().__init__(self.config.num_envs, observation_space(self.core.encoder), action_space(self.core.action_spec))
        self._actions: Any = None

    def reset(self) -> np.ndarray:
        """Draw every group and episode afresh (from the seed given to :meth:`seed`, if any)."""
        if any(self._options):
            raise ValueError(f"PopulationSB3VecEnv takes no reset options, got {self._options[0]!r}")
        obs, self.reset_infos = self.core.reset(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions; :meth:`step_wait` trains."""
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """One epoch for every member, SB3-style."""
        if self._actions is None:
            raise RuntimeError("PopulationSB3VecEnv.step_wait() called without step_async()")
        results, self._actions = self.core.step(self._actions), None
        return self._collect(results)

    def step_multipliers(self, multipliers: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """Like :meth:`step`, with each member's LR multiplier given directly (for hand-written controllers)."""
        return self._collect(self.core.step_multipliers(multipliers))

    def _collect(self, results: list[StepResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        infos = []
        for i, r in enumerate(results):
            info = dict(r.info)
            if r.final_obs is not None:
                info["terminal_observation"] = r.final_obs
                info["TimeLimit.truncated"] = r.truncated and not r.terminated
                self.reset_infos[i] = r.reset_info or {}
            infos.append(info)
        obs = np.stack([r.obs for r in results]).astype(np.float32, copy=False)
        rewards = np.array([r.reward for r in results], dtype=np.float32)
        dones = np.array([r.terminated or r.truncated for r in results], dtype=np.bool_)
        return obs, rewards, dones, infos

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if hasattr(self.core, "close"):
            self.core.close()

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [int(indices)] if isinstance(indices, (int, np.integer)) else [int(i) for i in indices]

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """Members share every attribute: ``render_mode``, ``action_spec``, ``encoder``, ``config``."""
        sources = {"render_mode": None, "action_spec": self.core.action_spec, "encoder": self.core.encoder,
                   "config": self.config}
        if attr_name not in sources:
            raise AttributeError(f"PopulationSB3VecEnv members have no attribute {attr_name!r}; "
                                 f"available: {', '.join(sources)}")
        return [sources[attr_name] for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Not supported: members are not separate objects."""
        raise AttributeError(f"PopulationSB3VecEnv members' attributes cannot be set (got {attr_name!r})")

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        """Only ``history`` (the metrics of each member's current episode) is available."""
        if method_name != "history":
            raise AttributeError(f"PopulationSB3VecEnv members have no method {method_name!r}; available: history")
        return [self.core.history(i) for i in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """Members are never wrapped individually."""
        return [False for _ in self._indices(indices)]
