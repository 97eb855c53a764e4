"""Population environments: many LRControlEnv-like episodes trained in lockstep in one process.

Two thin wrappers over :class:`~lrpilot.envs.population_core.PopulationCore`:

* :class:`PopulationVectorEnv`: a ``gymnasium.vector.VectorEnv`` (autoreset mode ``SAME_STEP``);
* :class:`PopulationVecEnv`: a ``stable_baselines3`` ``VecEnv`` (SB3's auto-reset semantics).

Both take the keyword arguments of :class:`~lrpilot.envs.population_core.PopulationConfig`
(``num_envs``, ``groups``, ``distribution``, ``spares``, ``group_lifetime``) plus every
field of :class:`~lrpilot.envs.config.EnvConfig` (``task``, ``initial_lr``, ``epochs``,
``actions``, ``reward``, ``lr_bounds``...), validated with a ``ValueError`` naming the field.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from lrpilot.envs.population_core import PopulationConfig, StepResult
from lrpilot.envs.population_workers import make_core

__all__ = ["PopulationVectorEnv", "PopulationVecEnv", "PopulationConfig"]

POPULATION_DOC = """
    ## Description

    ``num_envs`` members, split over ``groups`` populations. Each member plays
    :class:`~lrpilot.envs.lr_control.LRControlEnv` episodes of its own: its own session
    seed, initial weights, data order, initial LR, epoch budget, divergence and auto-reset.
    The members of a group share one task (architecture, optimiser family, data, batch and
    epoch size) and train together in one ``torch.vmap`` pass per step
    (:class:`~lrpilot.training.population.Population`). Tasks come either from the
    ``task`` / ``initial_lr`` / ``epochs`` / ``epoch_examples`` fields (as in
    ``LRControlEnv``; a group draws one of the tasks) or, with ``distribution=``, from a
    :class:`~lrpilot.training.synthetic.TaskDistribution` (architectures, optimisers, data
    families, LRs and budgets all drawn). A group keeps its task for ``group_lifetime``
    steps (default 256), then every running episode of the group is truncated
    (``info["group_redrawn"]``) and a new task is drawn; with one fixed task and no
    distribution a group is never redrawn.

    ## Action Space

    Per member, the action set of ``LRControlEnv`` (default `Discrete(4)`: ×0.1, ×0.5, ×1,
    ×2; or ``actions="continuous"``), mapped by the same
    :class:`~lrpilot.controller.actions.ActionSpec`; the LR stays within
    ``[initial_lr × 1e-4, initial_lr × 100]`` (``lr_bounds``).

    ## Observation Space

    Per member, the `Box` of :class:`~lrpilot.controller.features.ObservationEncoder`
    (the encoder of ``LRControlEnv`` and of deployed policies), from that member's
    episode history.

    ## Rewards

    As ``LRControlEnv`` (``reward="log_val_loss"`` by default; ``divergence_penalty`` on
    the step that diverges), computed by the same functions
    (:func:`~lrpilot.envs.lr_control.epoch_reward`, :func:`~lrpilot.envs.lr_control.is_diverged`).

    ## Starting State

    ``reset(seed=...)`` draws every group's task and every episode (session seed,
    initial LR, budget) from one generator seeded by ``seed``, and trains each
    episode's first epoch, so the first observations hold real metrics.

    ## Episode End

    Per member: termination on divergence, truncation when its budget is used up or its
    group is redrawn. The member then starts its next episode in the same step (its first
    epoch was trained ahead, see :mod:`lrpilot.envs.population_core`).

    On the CPU the same seed and actions give the same observations and rewards.

    ## Version History

    * v0: initial version (observation encoder ``lrpilot-obs`` v1).
"""


def _no_none(value: Any) -> Any:
    """Gymnasium batches infos into typed arrays, which cannot hold None: None becomes NaN."""
    if isinstance(value, dict):
        return {k: _no_none(v) for k, v in value.items()}
    return math.nan if value is None else value


class PopulationVectorEnv(gym.vector.VectorEnv):
    __doc__ = """A Gymnasium ``VectorEnv`` of lockstep-trained learning-rate-control episodes.

    Autoreset mode: ``SAME_STEP`` (``metadata["autoreset_mode"]``). When a member's episode
    ends, ``step`` already returns the next episode's first observation for it, with
    ``infos["final_obs"][i]`` and ``infos["final_info"]`` holding the ended episode's last
    observation and info; the top-level infos of that member are the new episode's.
    Infos are Gymnasium's dict of arrays with ``_key`` masks; missing metric values
    (``None`` in ``LRControlEnv``) read as NaN.
    """ + POPULATION_DOC + """
    Example:
        >>> envs = PopulationVectorEnv(num_envs=8, task="teacher-mlp", initial_lr=(1e-4, 1e-1), epochs=10)
        >>> obs, infos = envs.reset(seed=0)
        >>> obs, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, **kwargs: Any) -> None:
        self.config = PopulationConfig.from_kwargs(**kwargs)
        self.core = make_core(self.config)
        self.num_envs = self.config.num_envs
        encoder = self.core.encoder
        self.single_observation_space = spaces.Box(low=encoder.low, high=encoder.high, dtype=np.float32)
        self.single_action_space = self.core.action_spec.space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Draw every group and episode afresh from ``seed`` (options are not supported)."""
        if options:
            raise ValueError(f"PopulationVectorEnv.reset takes no options, got {sorted(options)}")
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


def __getattr__(name: str) -> Any:
    if name == "PopulationVecEnv":  # imports stable-baselines3, so only on demand
        from lrpilot.envs.population_sb3 import PopulationVecEnv

        return PopulationVecEnv
    raise AttributeError(f"module 'lrpilot.envs.population' has no attribute {name!r}")

