"""Behaviour cloning of a hand-rule teacher, with relabelled copies and DAgger.

A teacher (:data:`~lrpilot.controller.teachers.TEACHERS`) is a function of the observation, so a
network can imitate it exactly, and it can label *any* observation, not only the ones its own
rollouts visit. Two uses of that, both measured in ``docs/controller.md``:

* :func:`augment_progress`: copies of each collected observation with the budget fraction
  (``progress``) redrawn uniformly, relabelled by the teacher. The teachers switch behaviour at
  a fraction of the budget (annealing from 70%), and the rollouts alone show each state at one
  progress only; the copies teach the switch wherever it falls.
* DAgger (Ross et al., 2011): roll out the *student* and label the states it visits with the
  teacher (``collect(student, label=teacher)``), so the policy also learns what to do in the
  states its own mistakes lead to, which the teacher's rollouts never show.

:func:`behaviour_clone` fits an MLP (tanh) by cross-entropy to (observation, action) pairs;
:func:`clone_stage` runs rollouts, cloning and DAgger rounds, resumable stage by stage.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import FEATURE_INDEX
from lrpilot.controller.teachers import teacher_labels
from lrpilot.learn.export import tanh_mlp
from lrpilot.learn.rollouts import collect, policy_predictor

__all__ = ["behaviour_clone", "augment_progress", "clone_stage", "CloneResult"]


def behaviour_clone(obs: np.ndarray, actions: np.ndarray, n_actions: int, net_arch: Sequence[int] = (64, 64),
                    epochs: int = 30, lr: float = 3e-3, seed: int = 0, *, resume_from: Mapping[str, Any] | None = None,
                    on_epoch: Callable[[dict[str, Any]], None] | None = None) -> Any:
    """An MLP (tanh) fitted by cross-entropy to the teacher's actions; returns a ``torch.nn.Sequential``
    whose ``agreement`` attribute is its accuracy on the training pairs.

    ``on_epoch(state)`` is called after every epoch with everything that decides the rest of the fit
    (a copy: ``epoch``, ``net``, ``optimizer``, ``generator``: the shuffling generator's state,
    ``torch_rng``: torch's global RNG); passing such a state back as ``resume_from`` continues the fit exactly where
    it was (bit for bit on the CPU).
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = tanh_mlp([obs.shape[1], *net_arch, n_actions])
    x = torch.as_tensor(obs, dtype=torch.float32)
    y = torch.as_tensor(actions, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    done = 0 if resume_from is None else _resume(resume_from, net, opt, gen, epochs)
    for epoch in range(done, epochs):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 256):
            batch = perm[start:start + 256]
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(copy.deepcopy({"epoch": epoch + 1, "net": net.state_dict(), "optimizer": opt.state_dict(),
                                    "generator": gen.get_state(), "torch_rng": torch.get_rng_state()}))
    with torch.no_grad():
        agreement = float((net(x).argmax(1) == y).float().mean())
    net.agreement = agreement  # type: ignore[attr-defined]
    return net


def _resume(state: Mapping[str, Any], net: Any, opt: Any, gen: Any, epochs: int) -> int:
    """Put a :func:`behaviour_clone` ``on_epoch`` state back (network, Adam, shuffling and global RNG);
    returns the epochs it had done."""
    import torch

    net.load_state_dict(state["net"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    done = int(state["epoch"])
    if not 0 <= done <= epochs:
        raise ValueError(f"behaviour_clone: resume_from is at epoch {done}, outside 0..{epochs}")
    return done


def augment_progress(obs: np.ndarray, teacher: str, spec: ActionSpec, copies: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` relabelled copies of every row of ``obs`` with ``progress`` drawn from U[0, 1).

    Returns (observations, teacher actions) of shape ``[copies * N, F]`` and ``[copies * N]``;
    empty arrays for ``copies == 0``.
    """
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 0:
        raise ValueError(f"copies must be an integer >= 0, got {copies!r}")
    obs = np.asarray(obs, dtype=np.float32)
    if copies == 0:
        return obs[:0].copy(), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    out = np.repeat(obs, copies, axis=0)
    out[:, FEATURE_INDEX["progress"]] = rng.random(len(out), dtype=np.float32)
    return out, teacher_labels(teacher, spec, out).astype(np.int64)


def _rollouts(state: Any, stage: str, play: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A saved rollout stage, or ``play()`` it and save (observations, actions, seconds)."""
    import torch

    data = state.load(stage) if state is not None else None
    if data is None:
        t = time.perf_counter()
        raw = play()
        data = {"obs": torch.from_numpy(raw["obs"]), "actions": torch.from_numpy(raw["actions"]),
                "collect_seconds": round(time.perf_counter() - t, 1)}
        if state is not None:
            state.save(stage, data)
    return data


@dataclass
class CloneResult:
    """What :func:`clone_stage` produced."""

    actor: Any
    """The cloned actor (``torch.nn.Sequential``) after the last DAgger round."""
    samples: int
    """(observation, action) pairs collected: the teacher's rollouts plus every DAgger round's."""
    trained_samples: int
    """Pairs the last cloning was fitted to (``samples`` plus the relabelled copies)."""
    collect_seconds: float
    """Time spent collecting rollouts (as saved with each stage, so a resumed run reports the same)."""
    agreement: float
    """The actor's agreement with the teacher on ``trained_samples``."""

    def provenance(self) -> dict[str, Any]:
        """The policy file's record of the cloning (``bc_samples``, ``bc_trained_samples``...)."""
        return {"bc_samples": self.samples, "bc_trained_samples": self.trained_samples,
                "collect_seconds": round(self.collect_seconds, 1), "bc_agreement": round(self.agreement, 4)}


def clone_stage(teacher: str, env: Mapping[str, Any], spec: ActionSpec, *, bc_steps: int, bc_epochs: int,
                net_arch: Sequence[int], augment: int = 0, dagger_rounds: int = 0, dagger_steps: int | None = None,
                state: Any = None, console: Any = None) -> CloneResult:
    """Teacher rollouts (``bc_steps`` vector steps), behaviour cloning, then ``dagger_rounds`` DAgger rounds
    of ``dagger_steps`` (default ``bc_steps``); ``augment`` relabelled copies of every pair (see
    :func:`augment_progress`). ``env``: :func:`~lrpilot.learn.rollouts.collect`'s environment arguments.

    Every rollout and every cloning epoch is saved in ``state`` (a
    :class:`~lrpilot.learn.pipeline_state.PopulationCheckpoint`, or None) and taken from it
    when there: a resumed run continues after the last saved step. DAgger round ``r`` plays the
    current student on seed ``seed + r`` (other tasks than the teacher's rollouts), labels its
    states with the teacher and clones again, from scratch, on all the data so far.
    """
    seed = int(env["seed"])
    data = _rollouts(state, "teacher-data", lambda: collect(teacher, steps=bc_steps, evaluate_test=False, **env))
    obs, actions = [data["obs"].numpy()], [data["actions"].numpy()]
    seconds = data["collect_seconds"]
    net: Any = None
    for r in range(dagger_rounds + 1):
        if r:
            student = policy_predictor(net)
            data = _rollouts(state, f"dagger{r}-data", lambda: collect(
                student, steps=dagger_steps or bc_steps, evaluate_test=False, label=teacher, **{**env, "seed": seed + r}))
            obs.append(data["obs"].numpy())
            actions.append(data["actions"].numpy())
            seconds += data["collect_seconds"]
        x, y = np.concatenate(obs), np.concatenate(actions)
        if augment:
            extra_x, extra_y = augment_progress(x, teacher, spec, augment, seed + r)
            x, y = np.concatenate([x, extra_x]), np.concatenate([y, extra_y])
        stage = "bc" if r == 0 else f"dagger{r}-bc"
        net = behaviour_clone(x, y, spec.size, net_arch=net_arch, epochs=bc_epochs, seed=seed,
                              resume_from=state.load(stage) if state is not None else None,
                              on_epoch=state.saver(stage) if state is not None else None)
        if console is not None:
            what = "teacher rollouts" if r == 0 else f"+ DAgger round {r}"
            console.print(f"behaviour cloning of {teacher} ({what}): {len(y)} samples, "
                          f"agreement {100 * net.agreement:.1f}%")
    return CloneResult(actor=net, samples=int(sum(len(a) for a in actions)), trained_samples=int(len(y)),
                       collect_seconds=seconds, agreement=net.agreement)
