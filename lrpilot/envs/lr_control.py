"""`LRControlEnv`: a training run as a Gymnasium environment, one step per epoch (or per control interval)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np

from lrpilot.controller.base import Undo
from lrpilot.controller.features import FEATURES
from lrpilot.envs.config import EnvConfig
from lrpilot.envs.spaces import action_space, observation_space
from lrpilot.metrics import EpochMetrics
from lrpilot.training import TrainingSession, get_task
from lrpilot.training.snapshots import UNDO_LR_FACTOR  # re-exported: the environments cut by it

__all__ = ["LRControlEnv", "epoch_reward", "reward_reference", "UNDO_LR_FACTOR"]


class LRControlEnv(gym.Env[np.ndarray, Any]):
    """Control the learning rate of a real training run, one epoch (or one control interval) per step.

    ## Description

    Each episode is one :class:`~lrpilot.training.TrainingSession`: a task (given by
    name, or drawn from a list), an initial learning rate (fixed, the task's, or drawn
    log-uniformly from a range) and a session seed drawn from ``self.np_random``.
    After every epoch the agent chooses a multiplier for the learning rate of the
    next epoch. With ``interval`` (``0.25``, ``"50steps"``; see
    :class:`~lrpilot.training.intervals.Interval`) a step is one control interval instead: the
    session reports and the agent decides ``intervals_per_epoch`` times per epoch, the budget stays
    ``epochs`` (``epochs * intervals_per_epoch`` steps in all, counting the one ``reset`` trains), and
    each record's ``epoch`` is the interval's 1-based index with ``elapsed_epochs`` the budget spent.
    All keyword arguments are the fields of
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

    With ``undo=True`` (discrete action sets only) there is one more action, after the multipliers
    (`Discrete(5)` by default, action 4): *undo*. The session rewinds the model, optimiser and every
    random generator to the start of the interval that just ended (so the retry sees the same batches),
    multiplies the LR by ``UNDO_LR_FACTOR`` (0.1) and trains the retry interval in the same step. The
    undone interval still counts against the budget (the step that undoes uses one interval more); it
    stays in the history, marked ``undone``, and ``info["undone"]`` is True for the step that undid.

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

    With undo, ``"log_val_loss"`` is measured from the last interval that did not diverge (the one
    just undone, undone or not): `log(val_loss of that interval) − log(val_loss of the retry)`. So the
    rewards still sum to `log(L_1 / L_T)`: an undone interval earns no progress (what its step gained
    or lost, the undo step gives back), and undoing costs only the budget it spends. A diverged
    interval that the agent may still undo gets reward 0 (its val loss has no meaningful log); if the
    agent does not undo it, the step that ends the episode gets ``divergence_penalty``. An undo right
    after a diverged first interval (no earlier interval to measure from) gets reward 0.

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
       step terminates without training. With ``undo=True`` a diverged interval does not end the
       episode at once (unless it used up the budget): it is returned with ``terminated=False``,
       reward 0 and ``diverged=True`` in ``info["metrics"]``, and the next action decides: undo
       rewinds it and the episode goes on; any other action ends the episode there, without training,
       ``terminated=True`` with ``divergence_penalty`` (as a diverged first epoch does without undo).
    2. Truncation: the epoch budget ``epochs`` is used up (with an ``interval``, after
       ``epochs * intervals_per_epoch`` intervals, undone ones included). With
       ``budget_end="terminal"`` that step is ``terminated=True`` instead (``info["diverged"]`` stays
       False): the budget is in the observation, so its end is a terminal state for the learner.

    ``info["metrics"]`` holds the epoch's :class:`~lrpilot.metrics.EpochMetrics` as a
    dict (non-finite values as None; without ``seconds``, the epoch's wall time, so that
    infos are reproducible: :attr:`history` has it); ``info`` also has ``task``, ``initial_lr``,
    ``session_seed``, ``lr`` and (in ``step``) ``multiplier`` (``UNDO_LR_FACTOR`` for an undo); with
    ``undo=True`` also ``undone`` (whether the step undid); with
    ``evaluate_test=True`` the last step adds ``info["test"]`` (test loss and accuracy).

    On the CPU, the same seed and the same actions give the same observations and
    rewards (sessions own their RNG streams); on a GPU, kernels may not be deterministic.

    ## Version History

    * v0: initial version (observation encoder ``lrpilot-obs`` v1).
    * v0, lrpilot 0.1.1: ``divergence_factor`` is called ``divergence_growth_factor`` (the old
      keyword still works, with a ``DeprecationWarning``); episodes end exactly as before, and the
      epoch that ends one by the growth threshold now has ``diverged=True`` in its metrics.
    * v0, lrpilot 0.2: ``interval`` (one step per control interval) and ``undo`` (the undo action);
      their defaults keep episodes exactly as before.

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
        self._decisions = 0
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
        lo, hi = cfg.lr_bounds
        self.session = TrainingSession(task, seed=session_seed, device=cfg.device, data_dir=cfg.data_dir,
                                       min_lr=task.lr * lo, max_lr=task.lr * hi, epoch_examples=cfg.epoch_examples,
                                       divergence=cfg.divergence_rule, undo=cfg.undo, interval=cfg.interval)
        self._decisions = self.session.total_intervals(task.epochs)
        self.episode = {"task": task.name, "initial_lr": task.lr, "session_seed": session_seed}
        metrics = self.session.run_interval()
        if cfg.reward == "final_acc" and metrics.val_acc is None:
            raise ValueError(f"LRControlEnv: reward 'final_acc' needs a task with accuracy; {task.name!r} reports none")
        self._done = False
        return self._observation(), self._info(metrics)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the action's multiplier to the LR (or undo) and train one interval (an epoch by default)."""
        return self.step_decision(self.action_spec.to_decision(action))

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
        return self.step_decision(float(multiplier))

    def step_decision(self, decision: "float | Undo") -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Like :meth:`step`, with a controller's answer: an LR multiplier, or
        :data:`~lrpilot.controller.base.UNDO` (only with ``undo=True``)."""
        if self.session is None or self._done:
            raise RuntimeError("LRControlEnv.step() called before reset() or after the episode ended")
        session, undo = self.session, isinstance(decision, Undo)
        if undo and not self.config.undo:
            raise ValueError("LRControlEnv: undo is not offered; build the env with undo=True")
        before = session.history[-1]
        if before.diverged and not undo:
            return self._finish(before, decision, terminated=True)
        reference = reward_reference(session.history)
        if undo:
            session.undo(decision.lr_factor(UNDO_LR_FACTOR))  # type: ignore[union-attr]
        else:
            session.scale_lr(float(decision))  # type: ignore[arg-type]
        metrics = session.run_interval()
        last = session.epoch >= self._decisions
        if metrics.diverged and (last or not self.config.undo):
            return self._finish(metrics, decision, terminated=True)
        if metrics.diverged:  # the next action may undo it (Episode End)
            return self._observation(), 0.0, False, False, self._info(metrics, decision)
        reward = epoch_reward(self.config.reward, reference, metrics, last=last)
        if last:
            return self._finish(metrics, decision, terminated=False, reward=reward)
        return self._observation(), float(reward), False, False, self._info(metrics, decision)

    @property
    def intervals_per_epoch(self) -> int:
        """Steps per epoch of the current episode (1 with the default interval; 0 before ``reset``)."""
        return self.session.intervals_per_epoch if self.session is not None else 0

    @property
    def total_decisions(self) -> int:
        """Intervals in the current episode's budget, the one ``reset`` trains included (0 before ``reset``)."""
        return self._decisions

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

    def _finish(self, metrics: EpochMetrics, decision: "float | Undo", *, terminated: bool,
                reward: float | None = None) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """The last step of an episode (divergence or budget)."""
        self._done = True
        info = self._info(metrics, decision)
        info["diverged"] = terminated
        if self.config.evaluate_test and self.session is not None:
            test = {"loss": None, "acc": None} if terminated else self.session.evaluate("test")
            info["test"] = {k: (v if v is None or math.isfinite(v) else None) for k, v in test.items()
                            if k in ("loss", "acc")}
        value = self.config.divergence_penalty if terminated else reward
        ended = terminated or self.config.budget_end == "terminal"
        return self._observation(), float(value), ended, not ended, info

    def _observation(self) -> np.ndarray:
        assert self.session is not None  # internal invariant, not user input
        return self.encoder.encode(self.session.history, self.episode["initial_lr"], self._decisions)

    def _info(self, metrics: EpochMetrics, decision: "float | Undo | None" = None) -> dict[str, Any]:
        record = metrics.to_dict()
        del record["seconds"]  # wall time is not reproducible; infos are (see the class docstring)
        info: dict[str, Any] = {**self.episode, "metrics": record, "lr": metrics.lr}
        if decision is not None:
            info["multiplier"] = decision.lr_factor(UNDO_LR_FACTOR) if isinstance(decision, Undo) else float(decision)
            if self.config.undo:
                info["undone"] = isinstance(decision, Undo)
        return info


def reward_reference(history: "list[EpochMetrics]") -> EpochMetrics | None:
    """What a step's ``log_val_loss`` reward is measured from: the last interval of ``history`` that did
    not diverge (the last one, unless it diverged and is being undone); None when every one diverged."""
    return next((m for m in reversed(history) if not m.diverged), None)


def epoch_reward(reward: str, before: EpochMetrics | None, after: EpochMetrics, *, last: bool) -> float:
    """The reward of a step that trained ``after`` following ``before`` (see ``## Rewards``); ``before`` is
    None after an undo of a diverged first interval (no progress to measure: 0)."""
    if reward == "log_val_loss":
        return 0.0 if before is None else _log(before.val_loss) - _log(after.val_loss)
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
