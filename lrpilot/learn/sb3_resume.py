"""Exact resume of ``lrpilot train-controller``'s PPO path (:mod:`lrpilot.learn.ppo`).

The training environments are ``ResumableEnv(Monitor(LRControlEnv))`` (:func:`make_vec_env`),
whose state can be read and put back through ``VecEnv.env_method``, also in worker processes.

A checkpoint is taken at the start of a rollout (after the previous PPO update, so no
half-collected rollout is lost) and is two files in ``OUT/checkpoints``, written atomically
(:mod:`lrpilot.atomic`), the state file first:

* ``ppo_<N>_steps.resume.pt`` (``torch.load(..., weights_only=True)``): the global RNG states
  (torch, numpy, random: PPO samples actions with torch's and shuffles minibatches with numpy's),
  PPO's last observations and episode starts, every environment's state (its episode generator,
  its :class:`~lrpilot.training.session.TrainingSession` state: model, optimiser, RNG, history;
  the Monitor's running episode return) and the held-out evaluation history;
* ``ppo_<N>_steps.zip``: SB3's own file (policy, optimiser, counters). It holds cloudpickle data:
  only ``--resume`` ever loads it, and a run without ``--resume`` refuses an ``--out`` that has one.

``stable_baselines3.PPO.load`` reseeds the global RNGs and the environments; :func:`apply_resume`
then puts back the saved states, so that the resumed run continues exactly as the uninterrupted
one (bit for bit on the CPU, with the same arguments). A checkpoint without its state file (written
before this existed), or a resume with another ``--n-envs``, still continues, but not exactly: the
environments start new episodes and the RNG streams restart.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from lrpilot.atomic import torch_save_atomic, write_atomic

__all__ = ["ResumableEnv", "EnvFactory", "make_vec_env", "save_checkpoint", "state_path", "load_state", "apply_resume",
           "rng_state", "set_rng_state"]

FORMAT = 1


class ResumableEnv(gym.Wrapper):
    """Wraps ``Monitor(LRControlEnv)``: :meth:`resume_state` / :meth:`load_resume_state` (via ``env_method``)."""

    def resume_state(self) -> dict[str, Any]:
        """Everything that decides this environment's next observations and rewards (between episodes' steps)."""
        inner = self.env.unwrapped
        if inner.session is None:
            raise RuntimeError("ResumableEnv.resume_state: the environment has no running episode")
        return {"np_random": inner.np_random.bit_generator.state, "episode": dict(inner.episode),
                "session": inner.session.state_dict(), "monitor_rewards": [float(r) for r in self.env.rewards]}

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`resume_state` (after a ``reset()``, which readied the Monitor)."""
        inner, episode = self.env.unwrapped, state["episode"]
        # the same task, initial LR and session seed build the same session; then its state replaces it
        inner.reset(options={"task": episode["task"], "initial_lr": episode["initial_lr"],
                             "session_seed": episode["session_seed"]})
        inner.session.load_state_dict(state["session"])
        inner.np_random.bit_generator.state = state["np_random"]
        self.env.rewards = list(state["monitor_rewards"])


class EnvFactory:
    """Picklable environment constructor for (Subproc|Dummy)VecEnv workers: ``ResumableEnv(Monitor(LRControlEnv))``."""

    def __init__(self, kwargs: dict[str, Any], threads: int) -> None:
        self.kwargs, self.threads = kwargs, threads

    def __call__(self) -> ResumableEnv:
        import torch
        from stable_baselines3.common.monitor import Monitor

        from lrpilot.envs.lr_control import LRControlEnv

        torch.set_num_threads(self.threads)  # this runs inside a worker process (or the trainer itself)
        return ResumableEnv(Monitor(LRControlEnv(**self.kwargs)))


def make_vec_env(env_kwargs: dict[str, Any], n_envs: int, threads: int) -> Any:
    """``n_envs`` training environments: in-process (DummyVecEnv) for one, worker processes (SubprocVecEnv) for more."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    factories = [EnvFactory(env_kwargs, threads) for _ in range(n_envs)]
    return DummyVecEnv(factories) if n_envs == 1 else SubprocVecEnv(factories)


def _plain(value: Any) -> Any:
    """Numpy scalars to Python ones, recursively (what ``weights_only`` loading accepts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch, numpy, random) as tensors and plain values (``weights_only``-safe)."""
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                      int(has_gauss), float(cached)],
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` returned."""
    import torch

    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def state_path(checkpoint: Path) -> Path:
    """The state file beside SB3's ``ppo_<N>_steps.zip``."""
    return checkpoint.with_name(checkpoint.name.removesuffix(".zip") + ".resume.pt")


def save_checkpoint(model: Any, directory: Path, prefix: str, eval_history: list[dict[str, Any]]) -> Path:
    """Write the state file, then SB3's zip, for the model's current timesteps; returns the zip's path.

    Call it between rollouts (after an update), where no transition is half-collected.
    """
    import torch

    checkpoint = Path(directory) / f"{prefix}_{model.num_timesteps}_steps.zip"
    state = {"format": FORMAT, "timesteps": int(model.num_timesteps), "rng": rng_state(),
             "last_obs": torch.as_tensor(np.asarray(model._last_obs)),
             "last_episode_starts": torch.as_tensor(np.asarray(model._last_episode_starts)),
             "envs": model.get_env().env_method("resume_state"), "eval_history": _plain(eval_history)}
    torch_save_atomic(state_path(checkpoint), state)
    write_atomic(checkpoint, model.save)
    return checkpoint


def load_state(checkpoint: Path) -> dict[str, Any] | None:
    """The state file of ``checkpoint`` (None when there is none), checked against its timesteps."""
    import torch

    path = state_path(checkpoint)
    if not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    if state.get("format") != FORMAT or f"_{state.get('timesteps')}_steps" not in checkpoint.name:
        raise ValueError(f"--resume: {path} does not belong to {checkpoint.name} (or has an unknown format)")
    return state


def apply_resume(model: Any, venv: Any, state: dict[str, Any]) -> None:
    """Put the environments, PPO's last observations and the global RNGs back (call right before ``learn``)."""
    if len(state["envs"]) != venv.num_envs:
        raise ValueError(f"the checkpoint has {len(state['envs'])} environments, this run {venv.num_envs}")
    venv.reset()  # readies every environment (and its Monitor); the saved states then replace the episodes
    for i, env_state in enumerate(state["envs"]):
        venv.env_method("load_resume_state", env_state, indices=i)
    model._last_obs = state["last_obs"].numpy()
    model._last_episode_starts = state["last_episode_starts"].numpy()
    set_rng_state(state["rng"])
