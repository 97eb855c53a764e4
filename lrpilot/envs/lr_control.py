"""`LRControlEnv`: a training run as a Gymnasium environment, one step per epoch."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np

from lrpilot.controller.features import FEATURES
from lrpilot.envs.config import EnvConfig
from lrpilot.envs.spaces import action_space, observation_space
from lrpilot.metrics import EpochMetrics
from lrpilot.training import TrainingSession, get_task

__all__ = ["LRControlEnv", "epoch_reward"]


class LRControlEnv(gym.Env[np.ndarray, Any]):
    """Control the learning rate of a real training run, one epoch per step.

    ## Description

    Each episode is one :class:`~lrpilot.training.TrainingSession`: a task (given by
    name, or drawn from a list), an initial learning rate (fixed, the task's, or drawn
    log-uniformly from a range) and a session seed drawn from ``self.np_random``.
    After every epoch the agent chooses a multiplier for the learning rate of the
    next epoch. All keyword arguments are the fields of
    :class:`~lrpilot.envs.config.EnvConfig` and are validated when the env is built,
    tasks, task options and device included (``ValueError`` naming the field; an
    unknown argument is a ``ValueError`` too).

    ## Action Space

    Default: `Discrete(4)`, the LR multipliers `{0: ×0.1, 1: ×0.5, 2: ×1, 3: ×2}`
    (``actions="0.1,0.5,2,4"`` or a tuple sets others). With ``actions="continuous"``
    (or ``"continuous:LO,HI"``) it is `Box(-1, 1, (1,), float32)`, mapped
    log-linearly onto the multipliers `[LO, HI]` (default `[0.1, 10]`, so 0 keeps
    the LR; see :class:`~lrpilot.controller.actions.ActionSpec`). The LR always stays
    within `[initial_lr × 1e-4, initial_lr × 100]` (``lr_bounds``).

    ## Observation Space

    A `Box` of float32, shape `(N,)`, produced by
    :class:`~lrpilot.controller.features.ObservationEncoder` (the same encoder that
    deployed policies use) from the epochs run so far. Non-finite metrics never give
    NaN: see the encoder's module docstring.

    <observation table>

    ## Rewards

    * ``"log_val_loss"`` (default): `log(val_loss before the step) − log(val_loss after)`,
      so an episode's rewards sum to `log(L_1 / L_T)`, scale-free across tasks.
    * ``"final_acc"``: 0 until the last step, then the final validation accuracy
      (tasks with accuracy only).
    * ``"final_loss"``: 0 until the last step, then minus the final validation loss.

    The step that diverges receives ``divergence_penalty`` (default −10) instead.

    ## Starting State

    ``reset`` builds a fresh session (fresh weights under the drawn session seed) and
    trains the first epoch at the initial LR, so the first observation holds real
    metrics. ``options`` may fix ``task``, ``initial_lr`` and ``session_seed`` (for
    evaluation on held-out seeds); the random draws happen either way, so the stream
    of later episodes does not depend on ``options``.

    ## Episode End

    1. Termination: divergence, as the session flags it with ``EnvConfig.divergence_rule``
       (:class:`~lrpilot.training.divergence.DivergenceRule`): a non-finite training or
       validation loss, non-finite weights, a validation loss above 10 × the chance-level
       loss log(num_classes), or one above ``divergence_growth_factor`` (default 10) times
       the first epoch's. If the first epoch (in ``reset``) already diverged, the first
       step terminates without training.
    2. Truncation: the epoch budget ``epochs`` is used up.

    ``info["metrics"]`` holds the epoch's :class:`~lrpilot.metrics.EpochMetrics` as a
    dict (non-finite values as None; without ``seconds``, the epoch's wall time, so that
    infos are reproducible: :attr:`history` has it); ``info`` also has ``task``, ``initial_lr``,
    ``session_seed``, ``lr`` and (in ``step``) ``multiplier``; with
    ``evaluate_test=True`` the last step adds ``info["test"]`` (test loss and accuracy).

    On the CPU, the same seed and the same actions give the same observations and
    rewards (sessions own their RNG streams); on a GPU, kernels may not be deterministic.

    ## Version History

    * v0: initial version (observation encoder ``lrpilot-obs`` v1).
    * v0, lrpilot 0.1.1: ``divergence_factor`` is called ``divergence_growth_factor`` (the old
      keyword still works, with a ``DeprecationWarning``); episodes end exactly as before, and the
      epoch that ends one by the growth threshold now has ``diverged=True`` in its metrics.

    Example:
        >>> import gymnasium as gym, lrpilot.envs
        >>> env = gym.make("lrpilot/Digits-v0", epochs=5)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(2)  # keep the LR
    """

    metadata = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        allowed = [f.name for f in dataclasses.fields(EnvConfig)]
        unknown = sorted(set(kwargs) - set(allowed) - {"divergence_factor"})  # that one: deprecated, still taken
        if unknown:
            raise ValueError(f"LRControlEnv: unknown argument(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        self.config = EnvConfig(**kwargs)
        self._check_tasks()
        self.action_spec = self.config.action_spec
        self.encoder = self.config.observation_encoder()
        self.observation_space = observation_space(self.encoder)
        self.action_space = action_space(self.action_spec)
        self.session: TrainingSession | None = None
        self.episode: dict[str, Any] = {}
        self._epochs = 0
        self._done = True

    # -- Gymnasium API ------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new training run and train its first epoch at the initial LR."""
        super().reset(seed=seed)
        task_name, initial_lr, session_seed = self._draw(options or {})
        cfg = self.config
        task = get_task(task_name).with_overrides(lr=initial_lr, epochs=cfg.epochs, **cfg.task_options)
        if task.epochs < 2:
            raise ValueError(f"LRControlEnv: epochs must be >= 2, task {task.name!r} has {task.epochs}")
        self._epochs = task.epochs
        lo, hi = cfg.lr_bounds
        self.session = TrainingSession(task, seed=session_seed, device=cfg.device, data_dir=cfg.data_dir,
                                       min_lr=task.lr * lo, max_lr=task.lr * hi, epoch_examples=cfg.epoch_examples,
                                       divergence=cfg.divergence_rule)
        self.episode = {"task": task.name, "initial_lr": task.lr, "session_seed": session_seed}
        metrics = self.session.run_epoch()
        if cfg.reward == "final_acc" and metrics.val_acc is None:
            raise ValueError(f"LRControlEnv: reward 'final_acc' needs a task with accuracy; {task.name!r} reports none")
        self._done = False
        return self._observation(), self._info(metrics)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the action's multiplier to the LR and train one epoch."""
        return self.step_multiplier(self.action_spec.to_multiplier(action))

    def close(self) -> None:
        """Drop the training session (frees its model and optimiser)."""
        self.session = None
        self._done = True

    # -- beyond Gymnasium ---------------------------------------------------------
    def step_multiplier(self, multiplier: float) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Like :meth:`step`, with the LR multiplier given directly.

        Lets any :class:`~lrpilot.controller.Controller` (for example the ``rule``
        baseline) drive exactly the same episodes as the agent, for a fair evaluation.
        """
        if self.session is None or self._done:
            raise RuntimeError("LRControlEnv.step() called before reset() or after the episode ended")
        session = self.session
        before = session.history[-1]
        if before.diverged:
            return self._finish(before, multiplier, terminated=True)
        session.scale_lr(float(multiplier))
        metrics = session.run_epoch()
        if metrics.diverged:
            return self._finish(metrics, multiplier, terminated=True)
        truncated = session.epoch >= self._epochs
        reward = epoch_reward(self.config.reward, before, metrics, last=truncated)
        if truncated:
            return self._finish(metrics, multiplier, terminated=False, reward=reward)
        return self._observation(), float(reward), False, False, self._info(metrics, multiplier)

    @property
    def history(self) -> list[EpochMetrics]:
        """The metrics of every epoch of the current episode."""
        return list(self.session.history) if self.session is not None else []

    # -- internals ------------------------------------------------------------------
    def _check_tasks(self) -> None:
        """Every task exists and takes ``task_options``, and the device is usable (no data is loaded)."""
        from lrpilot.training.devices import resolve_device

        cfg = self.config
        for name in cfg.tasks:
            try:
                task = get_task(name)
            except ValueError as exc:
                raise ValueError(f"LRControlEnv: task: {exc}") from None
            try:
                task.with_overrides(epochs=cfg.epochs, **cfg.task_options)
            except ValueError as exc:
                raise ValueError(f"LRControlEnv: task_options: {exc}") from None
        try:
            resolve_device(cfg.device)
        except ValueError as exc:
            raise ValueError(f"LRControlEnv: device: {exc}") from None

    def _draw(self, options: dict[str, Any]) -> tuple[str, float | None, int]:
        """Draw task, initial LR and session seed from ``self.np_random``; ``options`` may override each."""
        unknown = set(options) - {"task", "initial_lr", "session_seed"}
        if unknown:
            raise ValueError(f"LRControlEnv.reset: unknown option(s) {sorted(unknown)}; allowed: task, initial_lr, session_seed")
        cfg, rng = self.config, self.np_random
        tasks = cfg.tasks
        task = tasks[int(rng.integers(len(tasks)))]
        lr = cfg.initial_lr
        draw = float(rng.uniform(0.0, 1.0))
        if isinstance(lr, tuple):
            lo, hi = math.log(lr[0]), math.log(lr[1])
            lr = math.exp(lo + draw * (hi - lo))
        seed = int(rng.integers(*cfg.session_seeds))
        if "initial_lr" in options:
            value = options["initial_lr"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ValueError(f"LRControlEnv.reset: initial_lr must be a finite number > 0, got {value!r}")
            lr = float(value)
        if "session_seed" in options:
            value = options["session_seed"]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"LRControlEnv.reset: session_seed must be an integer >= 0, got {value!r}")
            seed = int(value)
        return str(options.get("task", task)), lr, seed

    def _finish(self, metrics: EpochMetrics, multiplier: float, *, terminated: bool,
                reward: float | None = None) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """The last step of an episode (divergence or budget)."""
        self._done = True
        info = self._info(metrics, multiplier)
        info["diverged"] = terminated
        if self.config.evaluate_test and self.session is not None:
            test = {"loss": None, "acc": None} if terminated else self.session.evaluate("test")
            info["test"] = {k: (v if v is None or math.isfinite(v) else None) for k, v in test.items()}
        value = self.config.divergence_penalty if terminated else reward
        return self._observation(), float(value), terminated, not terminated, info

    def _observation(self) -> np.ndarray:
        assert self.session is not None  # internal invariant, not user input
        return self.encoder.encode(self.session.history, self.episode["initial_lr"], self._epochs)

    def _info(self, metrics: EpochMetrics, multiplier: float | None = None) -> dict[str, Any]:
        record = metrics.to_dict()
        del record["seconds"]  # wall time is not reproducible; infos are (see the class docstring)
        info: dict[str, Any] = {**self.episode, "metrics": record, "lr": metrics.lr}
        if multiplier is not None:
            info["multiplier"] = float(multiplier)
        return info


def epoch_reward(reward: str, before: EpochMetrics, after: EpochMetrics, *, last: bool) -> float:
    """The reward of a step that trained ``after`` following ``before`` (see ``## Rewards``)."""
    if reward == "log_val_loss":
        return _log(before.val_loss) - _log(after.val_loss)
    if not last:
        return 0.0
    if reward == "final_acc":
        return float(after.val_acc or 0.0)
    return -float(after.val_loss)


def _log(loss: float) -> float:
    """log of a finite loss; a loss of exactly 0 reads as 1e-12 (no -inf rewards)."""
    return math.log(max(loss, 1e-12))


def _observation_table() -> str:
    rows = ["| Index | Feature | Min | Max | Meaning |", "|---|---|---|---|---|"]
    rows += [f"| {i} | `{f.name}` | {f.low:g} | {f.high:g} | {f.description} |" for i, f in enumerate(FEATURES)]
    return "\n    ".join(rows)


LRControlEnv.__doc__ = (LRControlEnv.__doc__ or "").replace("<observation table>", _observation_table())
