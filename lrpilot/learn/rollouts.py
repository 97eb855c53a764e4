"""Rollouts on the population environment: a teacher or a student drives many synthetic episodes at once.

:func:`collect` plays a teacher (:data:`~lrpilot.controller.teachers.TEACHERS`) or a policy in a
:class:`~lrpilot.envs.population.PopulationSB3VecEnv` (many members, many episodes per second) over
a :class:`~lrpilot.training.distribution.TaskDistribution`, and records (observation, action) pairs,
plus each finished episode's final test accuracy and return.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.teachers import teacher_labels

__all__ = ["synthetic_distribution", "population_venv", "collect", "policy_predictor", "summarize_accs"]


def synthetic_distribution(families: Sequence[str] = ("teacher", "gmm", "seq"), **overrides: Any):  # noqa: ANN201
    """The population training distribution without the real-data (digits) family."""
    from lrpilot.training.distribution import TaskDistribution

    return TaskDistribution(families=tuple(families), **overrides)


def population_venv(distribution: Any, actions: str, num_envs: int, groups: int, workers: int, seed: int,
                    evaluate_test: bool = False, encoder_version: int = 1, **options: Any) -> Any:
    """A seeded :class:`~lrpilot.envs.population.PopulationSB3VecEnv` over ``distribution``; ``options``
    are further :class:`~lrpilot.envs.population.config.PopulationConfig` / ``EnvConfig`` fields
    (``twin``, ``budget_end``, ``interval``, ``undo``), passed only when given."""
    from lrpilot.envs.population import PopulationSB3VecEnv

    venv = PopulationSB3VecEnv(num_envs=num_envs, groups=groups, workers=workers, distribution=distribution,
                               actions=actions, evaluate_test=evaluate_test, encoder_version=encoder_version,
                               **options)
    venv.seed(seed)
    return venv


def collect(teacher: str | Callable[[np.ndarray], np.ndarray], *, distribution: Any, actions: str, steps: int,
            num_envs: int = 64, groups: int = 4, workers: int = 2, seed: int = 0,
            evaluate_test: bool = True, label: str | None = None, encoder_version: int = 1) -> dict[str, Any]:
    """Play ``teacher`` (a name or ``obs -> indices`` for a policy) for ``steps`` vector steps.

    Returns ``obs`` [N, F], ``actions`` [N] (indices into the action set: the ones played, or with
    ``label``, the ones that teacher would have played: DAgger), and per finished episode
    ``test_acc`` (None when diverged → counted 0) and ``returns``.
    """
    spec = ActionSpec.parse(actions)
    venv = population_venv(distribution, actions, num_envs, groups, workers, seed, evaluate_test, encoder_version)
    try:
        obs = venv.reset()
        all_obs, all_act, accs, returns = [], [], [], []
        running = np.zeros(num_envs)
        for _ in range(steps):
            if callable(teacher):
                idx = np.asarray(teacher(obs)).astype(int)
            else:
                idx = teacher_labels(teacher, spec, obs)
            all_obs.append(obs.copy())
            all_act.append(idx if label is None else teacher_labels(label, spec, obs))
            obs, rewards, dones, infos = venv.step_multipliers([spec.to_decision(i) for i in idx])
            running += rewards
            for i, done in enumerate(dones):
                if done:
                    info = infos[i]
                    if not info.get("group_redrawn"):
                        test = info.get("test") or {}
                        acc = test.get("acc")
                        accs.append(0.0 if info.get("diverged") or acc is None else float(acc))
                        returns.append(float(running[i]))
                    running[i] = 0.0
        return {"obs": np.concatenate(all_obs), "actions": np.concatenate(all_act), "test_acc": accs,
                "returns": returns}
    finally:
        venv.close()


def policy_predictor(net: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``obs -> greedy action indices`` of an actor network (for :func:`collect`)."""
    import torch

    def predict(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.as_tensor(obs, dtype=torch.float32)).argmax(1).numpy()

    return predict


def summarize_accs(accs: Sequence[float]) -> dict[str, float]:
    """Number, mean and standard error of final test accuracies (:func:`collect`'s ``test_acc``)."""
    n = len(accs)
    mean = float(np.mean(accs)) if n else math.nan
    sd = float(np.std(accs, ddof=1)) if n > 1 else math.nan
    return {"n": n, "mean_test_acc": mean, "se": sd / math.sqrt(n) if n > 1 else math.nan}
