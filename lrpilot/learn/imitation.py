"""Data for behaviour cloning beyond the teacher's own rollouts: relabelling and DAgger.

A hand-rule teacher (:data:`~lrpilot.learn.pipeline.TEACHERS`) is a function of the
observation, so it can label *any* observation, not only the ones its own rollouts visit.
Two uses of that, both measured in ``docs/controller.md``:

* :func:`augment_progress`: copies of each collected observation with the budget fraction
  (``progress``) redrawn uniformly, relabelled by the teacher. The teachers switch behaviour at
  a fraction of the budget (annealing from 70%), and the rollouts alone show each state at one
  progress only; the copies teach the switch wherever it falls.
* DAgger (Ross et al., 2011): roll out the *student* and label the states it visits with the
  teacher (``collect(student, label=teacher)``), so the policy also learns what to do in the
  states its own mistakes lead to, which the teacher's rollouts never show.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import FEATURES

__all__ = ["augment_progress", "clone_stage"]

_PROGRESS = [f.name for f in FEATURES].index("progress")


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
    out[:, _PROGRESS] = rng.random(len(out), dtype=np.float32)
    from lrpilot.learn.pipeline import teacher_labels

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


def clone_stage(teacher: str, env: Mapping[str, Any], spec: ActionSpec, bc_steps: int, bc_epochs: int,
                net_arch: Sequence[int], state: Any, info: dict[str, Any], console: Any) -> Any:
    """Teacher rollouts, behaviour cloning, then ``info["dagger_rounds"]`` DAgger rounds.

    Every rollout and every cloning epoch is saved in ``state`` (a
    :class:`~lrpilot.learn.pipeline_state.PopulationCheckpoint`, or None) and taken from it
    when there: a resumed run continues after the last saved step. DAgger round ``r`` plays the
    current student on seed ``seed + r`` (other tasks than the teacher's rollouts), labels its
    states with the teacher and clones again, from scratch, on all the data so far.
    """
    from lrpilot.learn.pipeline import behaviour_clone, collect, policy_predictor

    seed = int(env["seed"])
    copies, rounds = int(info.get("bc_augment", 0)), int(info.get("dagger_rounds", 0))
    steps = int(info.get("dagger_steps") or bc_steps)
    data = _rollouts(state, "teacher-data", lambda: collect(teacher, steps=bc_steps, evaluate_test=False, **env))
    obs, actions = [data["obs"].numpy()], [data["actions"].numpy()]
    seconds = data["collect_seconds"]
    net = None
    for r in range(rounds + 1):
        if r:
            student = policy_predictor(net)
            data = _rollouts(state, f"dagger{r}-data", lambda: collect(
                student, steps=steps, evaluate_test=False, label=teacher, **{**env, "seed": seed + r}))
            obs.append(data["obs"].numpy())
            actions.append(data["actions"].numpy())
            seconds += data["collect_seconds"]
        x, y = np.concatenate(obs), np.concatenate(actions)
        if copies:
            extra_x, extra_y = augment_progress(x, teacher, spec, copies, seed + r)
            x, y = np.concatenate([x, extra_x]), np.concatenate([y, extra_y])
        stage = "bc" if r == 0 else f"dagger{r}-bc"
        net = behaviour_clone(x, y, spec.size, net_arch=net_arch, epochs=bc_epochs, seed=seed,
                              resume_from=state.load(stage) if state is not None else None,
                              on_epoch=state.saver(stage) if state is not None else None)
        if console is not None:
            what = "teacher rollouts" if r == 0 else f"+ DAgger round {r}"
            console.print(f"behaviour cloning of {teacher} ({what}): {len(y)} samples, "
                          f"agreement {100 * net.agreement:.1f}%")
    info["bc_samples"] = int(sum(len(a) for a in actions))
    info["bc_trained_samples"] = int(len(y))
    info["collect_seconds"] = round(seconds, 1)
    info["bc_agreement"] = round(net.agreement, 4)
    return net
