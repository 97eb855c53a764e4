"""SB3 PPO on the population environment, with validation and the best checkpoint (issue #16).

:func:`train_population_ppo` runs PPO (from scratch, or from an actor such as a behaviour clone)
on :class:`~lrpilot.envs.population.PopulationSB3VecEnv` over the synthetic training distribution,
with any population options (``twin="bold-anneal-streakup"``: the twin reward; ``budget_end="terminal"``;
``interval``; ``undo``). With a :class:`~lrpilot.learn.validation.ValidationSet`, the policy is
exported and scored on it before the first update, every ``validate_every`` steps (at the first rollout start
from there: the actor that acts after an update) and after the last update; the actor with
the lowest validation regret is returned beside the last one, with the whole curve and every validated
actor (:attr:`PopulationPPOResult.validated`: a pick can be replayed or made again later). TensorBoard
logs go to ``tensorboard_log`` (``validation/regret``, ``validation/test_acc``, SB3's ``rollout/`` and
``train/`` scalars, ``train/env_steps_per_second``); a rich progress bar shows the mean return of the
last episodes (with a twin: the final log-loss gained over the reference, per episode).

Starting from a clone, two optional guards keep PPO from throwing the clone away while its critic is
still random (the "clone with retention" start of issue #16):

* ``critic_warmup`` steps during which only the critic learns (the actor's parameters are frozen);
* a *retention* loss ``retention * (1 - t / retention_until) * KL(clone || policy)`` on the observations
  of the last rollout, one gradient step before each rollout (with PPO's optimizer), decaying linearly
  to 0 at ``retention_until`` steps. The step goes through PPO's Adam, which normalises gradient sizes,
  so the weight acts relative to PPO's own gradients: measured on 512 steps from the shipped clone
  (``tests/test_population_ppo.py``'s setting), weights 1 and 50 both halved the KL from the clone
  that PPO alone reached (1.07 to 0.49). ``retention_steps`` takes more than one step per rollout, and
  ``retention_on="from-scratch"`` takes the loss only on the states of episodes that are not fine-tune draws (a
  step's ``info["task"]``): PPO is then held at its start on the small from-scratch tasks and free on the fine-tunes.

**Resuming** (``checkpoint_every`` with ``save_progress``, then ``resume_from``): at the start of a
rollout (after an update, so no transition is half-collected), every ``checkpoint_every`` steps,
``save_progress`` receives the training state: the policy's and its optimizer's state dicts, the step
and update counts, the validation curve, every validated actor (the best among them) and the next
validation step, the global RNG states, the seconds trained (validations excluded) and the wall seconds. Tensors and plain
values only: it loads with ``torch.load(..., weights_only=True)``. ``resume_from`` (such a state) continues PPO from there to
``timesteps``. The population environment's own state (hundreds of member runs in worker processes) is
not saved: the resumed run starts new episodes from a reset seeded with ``seed + steps done``, so it
is not bit-identical to an uninterrupted run, and at most ``checkpoint_every`` steps are redone.
"""

from __future__ import annotations

import copy
import functools
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from lrpilot.learn.export import actor_from_layers, actor_layers, export_policy
from lrpilot.learn.rollouts import population_venv
from lrpilot.learn.sb3_ppo import build_ppo

__all__ = ["PopulationPPOResult", "train_population_ppo", "validate_actor"]


@dataclass
class PopulationPPOResult:
    """What :func:`train_population_ppo` produced."""

    actor: Any
    """The actor after the last update (``torch.nn.Sequential``)."""
    best_actor: Any
    """The actor with the lowest validation regret (the last one without validation)."""
    curve: list[dict[str, Any]] = field(default_factory=list)
    """One entry per validation: ``timesteps``, ``mean_regret``, ``mean_test_acc``, ``diverged``, ``n`` and
    ``per_task_regret`` (task label -> mean regret)."""
    seconds: float = 0.0
    """Wall time of the PPO training, validations excluded."""
    steps_per_second: float = 0.0
    """Environment steps per second of the training (rollouts and updates)."""
    return_trend: list[dict[str, Any]] = field(default_factory=list)
    """The progress bar's reports (:attr:`~lrpilot.learn.sb3_callbacks.ProgressCallback.trend`): the mean
    episode return (with a twin: relative to it) over each tenth of the run, since this process started."""
    validated: dict[int, Any] = field(default_factory=dict)
    """Every validated actor, by the step it was scored at (the keys are the curve's ``timesteps``; a run
    resumed from a state saved before these were kept has its best one and the later ones only)."""

    @property
    def best(self) -> dict[str, Any] | None:
        """The curve's entry of :attr:`best_actor` (None without validation)."""
        return best_entry(self.curve) if self.curve else None


def best_entry(curve: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The validation curve's entry with the lowest regret (the earliest of equals)."""
    return min(curve, key=lambda e: (e["mean_regret"], e["timesteps"]))


def validate_actor(actor: Any, actions: str, validation: Any, base: str | None = None) -> dict[str, Any]:
    """Export ``actor`` as a policy file (as deployment loads it; ``base``: a residual policy's rule) and
    score it on ``validation``."""
    from lrpilot.controller.policy import load_policy

    with tempfile.TemporaryDirectory(prefix="lrpilot-validation-") as tmp:
        export_policy(actor, Path(tmp) / "candidate", actions, {"stage": "validation"}, base=base)
        policy = load_policy(Path(tmp) / "candidate")
    return validation.evaluate(functools.partial(copy.deepcopy, policy))  # picklable, for validation workers


def _validation_callback(every: int, evaluate: Callable[[Any], dict[str, Any]], console: Any | None) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class ValidationCallback(BaseCallback):
        """Score the current actor at the start and every ``every`` steps; keep its layers (``validated``) and
        which is best."""

        def __init__(self) -> None:
            super().__init__()
            self.curve: list[dict[str, Any]] = []
            self.validated: dict[int, Any] = {}
            self.seconds = 0.0
            self.next_at = 0

        def _on_training_start(self) -> None:
            if not self.curve:  # not resumed: the starting actor is the first candidate
                self.run()
                self.next_at = self.num_timesteps + every

        def _on_rollout_start(self) -> None:  # after an update: the actor scored is the one that acts from here
            if self.num_timesteps >= self.next_at:
                while self.next_at <= self.num_timesteps:  # once per actor, however long the rollouts
                    self.next_at += every
                self.run()

        def _on_step(self) -> bool:
            return True

        def run(self) -> None:
            import random

            import numpy as np
            import torch

            began = time.perf_counter()
            # PPO samples its actions from torch's global RNG and shuffles its minibatches with numpy's: validating
            # must not change what the run does (until session 30, loading the policy to play drew from torch's)
            states = np.random.get_state(), random.getstate()
            with torch.random.fork_rng(devices=[]):
                result = evaluate(self.model)
            np.random.set_state(states[0])
            random.setstate(states[1])
            entry = {"timesteps": int(self.num_timesteps), **{k: result[k] for k in
                                                                ("mean_regret", "mean_test_acc", "diverged", "n")},
                     "per_task_regret": {k: round(v, 3) for k, v in result["per_task_regret"].items()}}
            self.validated[entry["timesteps"]] = actor_layers(self.model)[0]
            self.curve.append(entry)
            self.logger.record("validation/regret", entry["mean_regret"])
            self.logger.record("validation/test_acc", entry["mean_test_acc"])
            for label, regret in entry["per_task_regret"].items():
                self.logger.record(f"validation/regret/{label}", regret)
            self.logger.dump(self.num_timesteps)
            self.seconds += time.perf_counter() - began
            if console is not None:
                console.print(f"validation @ {entry['timesteps']} steps: regret {entry['mean_regret']:.2f} points, "
                              f"test acc {entry['mean_test_acc']:.2f}%, diverged {entry['diverged']} (n={entry['n']})")

    return ValidationCallback()


RETENTION_SCOPES = ("all", "from-scratch")
"""Which states the retention loss is taken on: every state of the last rollout, or only those of episodes that
train from scratch (not a fine-tune draw, :func:`lrpilot.training.distribution.is_finetune_name`): PPO is then free
on the fine-tunes and held at its start on the rest."""


def _retention_callback(clone: Any, coef: float, until: int, steps: int = 1, scope: str = "all") -> Any:
    import numpy as np
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from lrpilot.training.distribution import is_finetune_name

    if scope not in RETENTION_SCOPES:
        raise ValueError(f"retention_on must be one of {', '.join(RETENTION_SCOPES)}, got {scope!r}")

    class RetentionCallback(BaseCallback):
        """Before each rollout, ``steps`` steps on ``coef * decay * KL(clone || policy)`` over the last rollout's
        observations (with ``scope="from-scratch"``: those of from-scratch episodes only)."""

        def __init__(self) -> None:
            super().__init__()
            self.obs: torch.Tensor | None = None
            self.kept: list[np.ndarray] = []  # per rollout step: which envs' states the loss is taken on

        def _on_rollout_end(self) -> None:
            buffer = self.model.rollout_buffer
            obs = buffer.observations
            if scope == "from-scratch":  # the info of step t describes the episode that acted on obs t
                obs = obs[np.stack(self.kept)]
            self.obs = torch.as_tensor(obs.reshape(-1, obs.shape[-1])).clone()

        def _on_rollout_start(self) -> None:
            self.kept = []
            weight = coef * max(0.0, 1.0 - self.num_timesteps / until)
            if self.obs is None or len(self.obs) == 0 or weight <= 0.0:
                return
            policy = self.model.policy
            with torch.no_grad():
                target = torch.log_softmax(clone(self.obs), dim=-1)
            for _ in range(steps):
                logits = policy.get_distribution(self.obs).distribution.logits  # normalised log-probabilities
                kl = (target.exp() * (target - logits)).sum(-1).mean()
                if not kl.requires_grad:  # the actor is frozen (critic warm-up): nothing to retain yet
                    break
                policy.optimizer.zero_grad()
                (weight * kl).backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), self.model.max_grad_norm)
                policy.optimizer.step()
            self.logger.record("train/retention_kl", float(kl.detach()))
            self.logger.record("train/retention_states", len(self.obs))
            if kl.requires_grad:
                self.logger.record("train/retention_weight", weight)

        def _on_step(self) -> bool:
            if scope == "from-scratch":
                self.kept.append(np.array([not is_finetune_name(str(info.get("task", "")))
                                           for info in self.locals["infos"]]))
            return True

    return RetentionCallback()


def _checkpoint_callback(every: int, save: Callable[[dict[str, Any]], None], validator: Any,
                         clock: Callable[[], float], wall: Callable[[], float]) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class CheckpointCallback(BaseCallback):
        """At a rollout's start, every ``every`` steps: hand the training state to ``save``."""

        def __init__(self) -> None:
            super().__init__()
            self.next_at = 0

        def _on_training_start(self) -> None:
            self.next_at = self.num_timesteps + every

        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= self.next_at:
                self.next_at = self.num_timesteps + every
                save(progress_state(self.model, validator, clock(), wall()))

        def _on_step(self) -> bool:
            return True

    return CheckpointCallback()


def progress_state(model: Any, validator: Any, seconds: float, wall_seconds: float) -> dict[str, Any]:
    """What :func:`train_population_ppo` needs to continue ``model`` (module docstring, "Resuming")."""
    from lrpilot.learn.sb3_resume import rng_state

    state: dict[str, Any] = {"timesteps": int(model.num_timesteps), "n_updates": int(model._n_updates),
                             "policy": model.policy.state_dict(), "optimizer": model.policy.optimizer.state_dict(),
                             "rng": rng_state(), "seconds": float(seconds), "wall_seconds": float(wall_seconds)}
    if validator is not None:
        state.update(curve=[dict(e) for e in validator.curve], next_validation=int(validator.next_at),
                     validated={str(step): [list(pair) for pair in layers]
                                for step, layers in validator.validated.items()})
    return state


def _resume(model: Any, venv: Any, state: dict[str, Any], validator: Any, seed: int) -> None:
    """Put ``state`` (:func:`progress_state`) back into ``model`` and the validator; reseed the environment."""
    from lrpilot.learn.sb3_resume import set_rng_state

    model.policy.load_state_dict(state["policy"])
    model.policy.optimizer.load_state_dict(state["optimizer"])
    model.num_timesteps, model._n_updates = int(state["timesteps"]), int(state["n_updates"])
    if validator is not None and state.get("curve"):
        validator.curve = [dict(e) for e in state["curve"]]
        validator.next_at = int(state["next_validation"])
        validator.validated = {int(step): [tuple(pair) for pair in layers]
                               for step, layers in state.get("validated", {}).items()}
        if "best_layers" in state:  # saved before every validated actor was kept: the best one is all there is
            best = best_entry(validator.curve)["timesteps"]
            validator.validated.setdefault(best, [tuple(pair) for pair in state["best_layers"]])
    venv.seed(seed + int(state["timesteps"]))  # new episodes: the ones in flight at the kill are not saved
    set_rng_state(state["rng"])


def _critic_warmup_callback(until: int) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class CriticWarmupCallback(BaseCallback):
        """The actor's parameters are frozen until ``until`` steps; the critic learns from the start."""

        def _actor(self) -> list[Any]:
            policy = self.model.policy
            return [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]

        def _on_training_start(self) -> None:
            if self.num_timesteps < until:
                for p in self._actor():
                    p.requires_grad_(False)

        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= until:
                for p in self._actor():
                    p.requires_grad_(True)

        def _on_step(self) -> bool:
            return True

    return CriticWarmupCallback()


def train_population_ppo(net: Any, *, distribution: Any, actions: str, timesteps: int, num_envs: int = 64,
                         groups: int = 4, workers: int = 2, seed: int = 0, learning_rate: float = 1e-4,
                         n_steps: int = 32, batch_size: int = 512, n_epochs: int = 5, ent_coef: float = 0.0,
                         gamma: float = 0.99, gae_lambda: float = 0.95, net_arch: Sequence[int] = (64, 64),
                         encoder_version: int = 1, env_options: Mapping[str, Any] | None = None,
                         validation: Any = None, validate_every: int = 0, tensorboard_log: str | None = None,
                         console: Any | None = None, critic_warmup: int = 0, retention: float = 0.0,
                         retention_until: int = 0, retention_steps: int = 1, retention_on: str = "all",
                         checkpoint_every: int = 0,
                         save_progress: Callable[[dict[str, Any]], None] | None = None,
                         resume_from: Mapping[str, Any] | None = None, base: str | None = None) -> PopulationPPOResult:
    """SB3 PPO whose actor starts from ``net`` (None: from scratch with ``net_arch``); see the module docstring.
    ``base``: train a residual policy on this teacher rule (:mod:`lrpilot.learn.residual`; from scratch,
    it starts with ×1 as the most likely action)."""
    import torch
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import VecMonitor

    from lrpilot.learn.sb3_callbacks import ProgressCallback

    linears = [m for m in net if isinstance(m, torch.nn.Linear)] if net is not None else []
    arch = [m.out_features for m in linears[:-1]] if net is not None else list(net_arch)
    spec = None
    if base is not None:
        from lrpilot.learn.residual import ResidualVecEnv, check_base

        spec = check_base(base, actions)  # before any worker process starts
    inner = population_venv(distribution, actions, num_envs, groups, workers, seed, encoder_version=encoder_version,
                            **dict(env_options or {}))
    venv = VecMonitor(inner if spec is None else ResidualVecEnv(inner, base, spec))
    try:
        model = build_ppo(venv, net_arch=arch, seed=seed, learning_rate=learning_rate, n_steps=n_steps,
                          batch_size=batch_size, n_epochs=n_epochs, gamma=gamma, gae_lambda=gae_lambda,
                          ent_coef=ent_coef, actor=net, tensorboard_log=tensorboard_log)
        if spec is not None and net is None:
            from lrpilot.learn.residual import start_at_identity

            start_at_identity(model, spec)
        callbacks: list[Any] = []
        if critic_warmup > 0:
            callbacks.append(_critic_warmup_callback(critic_warmup))
        if retention > 0:
            if net is None:
                raise ValueError("retention needs a starting actor (a clone) to retain")
            frozen = copy.deepcopy(net).requires_grad_(False)
            callbacks.append(_retention_callback(frozen, retention, retention_until or max(timesteps // 2, 1),
                                                 retention_steps, retention_on))
        validator = None
        if validation is not None:
            validator = _validation_callback(validate_every or timesteps,
                                             lambda m: validate_actor(m, actions, validation, base), console)
            callbacks.append(validator)
        done, before, before_wall = 0, 0.0, 0.0
        if resume_from is not None:
            _resume(model, venv, dict(resume_from), validator, seed)
            done, before = model.num_timesteps, float(resume_from.get("seconds", 0.0))
            before_wall = float(resume_from.get("wall_seconds", before))
        twin = (env_options or {}).get("twin")
        bar = ProgressCallback(timesteps, console, start_timesteps=done,
                               paused=lambda: validator.seconds if validator else 0.0,
                               label=f"return vs {twin}" if twin else "mean return",
                               report_every=max(timesteps // 10, 1))
        began = time.perf_counter()

        def trained() -> float:  # seconds of PPO so far, validations excluded, across resumes
            return before + time.perf_counter() - began - (validator.seconds if validator else 0.0)

        if checkpoint_every > 0 and save_progress is not None:
            callbacks.append(_checkpoint_callback(checkpoint_every, save_progress, validator, trained,
                                                  lambda: before_wall + time.perf_counter() - began))
        model.learn(max(timesteps - done, 0), callback=CallbackList([bar, *callbacks]), tb_log_name="ppo",
                    reset_num_timesteps=resume_from is None)
        if validator is not None and validator.curve[-1]["timesteps"] < model.num_timesteps:
            validator.run()  # the last actor is a candidate too
        seconds = trained()
    finally:
        venv.close()
    last = actor_from_layers(actor_layers(model)[0])
    validated = {step: actor_from_layers(layers) for step, layers in validator.validated.items()} if validator else {}
    best = validated[best_entry(validator.curve)["timesteps"]] if validator is not None else last
    return PopulationPPOResult(last, best, list(validator.curve) if validator else [], seconds,
                               model.num_timesteps / seconds if seconds > 0 else 0.0, bar.trend, validated)
