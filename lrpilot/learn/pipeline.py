"""Fast controller training on the population environment: behaviour cloning of a hand rule,
then (optionally) PPO fine-tuning; the result is a plain MLP actor in the policy file format.

* A *teacher* is a hand rule written as a function of the observation vector (the same
  :class:`~lrpilot.controller.features.ObservationEncoder` features a policy sees), so a
  network can imitate it exactly. ``bold`` is the bold driver (×1.5 after an epoch that
  lowered the validation loss, ×0.5 otherwise, ×1 after the first epoch); ``bold-anneal``
  is the bold driver until ``anneal_at`` of the budget and then ×0.5 every epoch (a short
  annealing tail, which final accuracy rewards); ``bold-anneal-streak`` anneals only when the
  validation loss did not improve in each of the last three epochs (the teacher of the shipped
  ``default``); ``bold2`` uses ×2 instead of ×1.5. With an action set without ×1.5, the nearest
  action in log scale is taken (×2).
* :func:`collect` plays the teacher in a :class:`~lrpilot.envs.population.PopulationSB3VecEnv`
  (many members, many episodes per second) over a :class:`TaskDistribution` and records
  (observation, teacher action) pairs, plus each finished episode's final test accuracy.
* :func:`behaviour_clone` fits an MLP (tanh) by cross-entropy to those pairs.
* :func:`ppo_finetune` (optional) starts SB3 PPO with the cloned actor as its policy network.
* :func:`export_actor` writes the actor with :func:`~lrpilot.controller.policy.save_policy`.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lrpilot.controller.actions import ActionSpec
from lrpilot.controller.features import FEATURES

__all__ = ["TEACHERS", "teacher_multipliers", "teacher_labels", "collect", "behaviour_clone", "ppo_finetune",
           "export_actor", "nearest_action", "synthetic_distribution", "summarize_accs", "policy_predictor", "actor_layers", "timed"]

_I = {f.name: i for i, f in enumerate(FEATURES)}


def _bold(obs: np.ndarray, up: float = 1.5, down: float = 0.5) -> np.ndarray:
    change = obs[:, _I["val_loss_log_change"]]
    # first epoch of an episode: no change yet (exactly 0 and no LR history) -> keep the LR
    start = (obs[:, _I["log_lr_ratio"]] == 0) & (obs[:, _I["log_lr_change"]] == 0) & (change == 0) \
        & (obs[:, _I["val_loss_log_change_lag1"]] == 0)
    out = np.where(change < 0, up, down)
    out = np.where(start, 1.0, out)
    return np.where(obs[:, _I["nonfinite"]] > 0, down, out)


def _bold_anneal(obs: np.ndarray, anneal_at: float = 0.7, up: float = 1.5) -> np.ndarray:
    out = _bold(obs, up=up)
    return np.where(obs[:, _I["progress"]] >= anneal_at, 0.5, out)


def _bold_anneal_adaptive(obs: np.ndarray, anneal_at: float = 0.6, fast: float = -0.03) -> np.ndarray:
    """Bold driver; from ``anneal_at`` of the budget, an epoch that improved the validation loss by
    less than 3% (log change > ``fast``) halves the LR instead of raising it (a run still far from
    converged, e.g. one started at a much too small LR, keeps raising it)."""
    out = _bold(obs)
    late = obs[:, _I["progress"]] >= anneal_at
    slow = obs[:, _I["val_loss_log_change"]] > fast
    return np.where(late & slow, 0.5, out)


def _bold_anneal_streak(obs: np.ndarray, anneal_at: float = 0.7) -> np.ndarray:
    """Bold driver; from ``anneal_at`` of the budget, halve the LR every epoch *unless* the validation
    loss improved in each of the last three epochs (a run still climbing from a too-small LR keeps
    raising it; one oscillating at the edge of stability is annealed)."""
    out = _bold(obs)
    late = obs[:, _I["progress"]] >= anneal_at
    climbing = (obs[:, _I["val_loss_log_change"]] < 0) & (obs[:, _I["val_loss_log_change_lag1"]] < 0) \
        & (obs[:, _I["val_loss_log_change_lag2"]] < 0)
    return np.where(late & ~climbing, 0.5, out)


def _bold_anneal_streakup(obs: np.ndarray) -> np.ndarray:
    """``bold-anneal-streak``, but ×2 instead of ×1.5 while the last three epochs all improved: a run
    climbing steadily out of a much too small LR doubles it, one at the edge of stability (improving
    and worsening in turn) only goes ×1.5 / ×0.5. Chosen on training-distribution tasks (see
    ``docs/controller.md``); the shipped policy imitates it with the actions ×{0.1, 0.5, 1, 1.5, 2}."""
    out = _bold_anneal_streak(obs)
    climbing = (obs[:, _I["val_loss_log_change"]] < 0) & (obs[:, _I["val_loss_log_change_lag1"]] < 0) \
        & (obs[:, _I["val_loss_log_change_lag2"]] < 0)
    return np.where(climbing & (out == 1.5), 2.0, out)


TEACHERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bold-anneal-streakup": _bold_anneal_streakup,
    "bold-anneal-streak": _bold_anneal_streak,
    "bold-anneal-adaptive": _bold_anneal_adaptive,
    "bold": _bold,
    "bold2": lambda obs: _bold(obs, up=2.0),
    "bold-anneal": _bold_anneal,
    "bold-anneal2": lambda obs: _bold_anneal(obs, up=2.0),
    "bold-anneal-late": lambda obs: _bold_anneal(obs, anneal_at=0.8),
}


def teacher_multipliers(name: str, obs: np.ndarray) -> np.ndarray:
    """The teacher's LR multiplier for each row of ``obs`` ([n, features])."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS)}")
    return TEACHERS[name](np.asarray(obs, dtype=np.float64))


def nearest_action(spec: ActionSpec, multipliers: np.ndarray) -> np.ndarray:
    """Index of the discrete action whose multiplier is nearest in log scale."""
    logs = np.log(np.asarray(spec.multipliers))
    return np.abs(np.log(multipliers)[:, None] - logs[None, :]).argmin(axis=1)


def teacher_labels(teacher: str, spec: ActionSpec, obs: np.ndarray) -> np.ndarray:
    """The teacher's action (index into ``spec``) for each row of ``obs``."""
    return nearest_action(spec, teacher_multipliers(teacher, obs))


def synthetic_distribution(families: Sequence[str] = ("teacher", "gmm", "seq"), **overrides: Any):  # noqa: ANN201
    """The population training distribution without the real-data (digits) family."""
    from lrpilot.training.synthetic import TaskDistribution

    return TaskDistribution(families=tuple(families), **overrides)


def _venv(distribution: Any, actions: str, num_envs: int, groups: int, workers: int, seed: int,
          evaluate_test: bool = False) -> Any:
    from lrpilot.envs.population import PopulationSB3VecEnv

    venv = PopulationSB3VecEnv(num_envs=num_envs, groups=groups, workers=workers, distribution=distribution,
                            actions=actions, evaluate_test=evaluate_test)
    venv.seed(seed)
    return venv


def collect(teacher: str | Callable[[np.ndarray], np.ndarray], *, distribution: Any, actions: str, steps: int,
            num_envs: int = 64, groups: int = 4, workers: int = 2, seed: int = 0,
            evaluate_test: bool = True, label: str | None = None) -> dict[str, Any]:
    """Play ``teacher`` (a name or ``obs -> indices`` for a policy) for ``steps`` vector steps.

    Returns ``obs`` [N, F], ``actions`` [N] (indices into the action set: the ones played, or with
    ``label``, the ones that teacher would have played: DAgger), and per finished episode
    ``test_acc`` (None when diverged → counted 0) and ``returns``.
    """
    spec = ActionSpec.parse(actions)
    venv = _venv(distribution, actions, num_envs, groups, workers, seed, evaluate_test)
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
            obs, rewards, dones, infos = venv.step_multipliers([spec.multipliers[i] for i in idx])
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


def behaviour_clone(obs: np.ndarray, actions: np.ndarray, n_actions: int, net_arch: Sequence[int] = (64, 64),
                    epochs: int = 30, lr: float = 3e-3, seed: int = 0, *, resume_from: Mapping[str, Any] | None = None,
                    on_epoch: Callable[[dict[str, Any]], None] | None = None) -> Any:
    """An MLP (tanh) fitted by cross-entropy to the teacher's actions; returns a ``torch.nn.Sequential``.

    ``on_epoch(state)`` is called after every epoch with everything that decides the rest of the fit
    (a copy: ``epoch``, ``net``, ``optimizer``, ``generator``: the shuffling generator's state,
    ``torch_rng``: torch's global RNG); passing such a state back as ``resume_from`` continues the fit exactly where
    it was (bit for bit on the CPU).
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    sizes = [obs.shape[1], *net_arch]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    layers.append(nn.Linear(sizes[-1], n_actions))
    net = nn.Sequential(*layers)
    x = torch.as_tensor(obs, dtype=torch.float32)
    y = torch.as_tensor(actions, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    done = 0
    if resume_from is not None:
        net.load_state_dict(resume_from["net"])
        opt.load_state_dict(resume_from["optimizer"])
        gen.set_state(resume_from["generator"])
        torch.set_rng_state(resume_from["torch_rng"])
        done = int(resume_from["epoch"])
        if not 0 <= done <= epochs:
            raise ValueError(f"behaviour_clone: resume_from is at epoch {done}, outside 0..{epochs}")
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


def actor_layers(net: Any) -> list[tuple[Any, Any]]:
    import torch

    return [(m.weight.detach().clone(), m.bias.detach().clone()) for m in net if isinstance(m, torch.nn.Linear)]


def ppo_finetune(net: Any, *, distribution: Any, actions: str, timesteps: int, num_envs: int = 64, groups: int = 4,
                 workers: int = 2, seed: int = 0, learning_rate: float = 1e-4, n_steps: int = 32,
                 batch_size: int = 512, n_epochs: int = 5, ent_coef: float = 0.0, gamma: float = 0.99,
                 net_arch: Sequence[int] = (64, 64)) -> Any:
    """SB3 PPO whose actor starts from ``net`` (the cloned MLP; None: from scratch with ``net_arch``);
    returns the trained actor as a Sequential."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from lrpilot.learn.ppo import policy_layers

    linears = [m for m in net if isinstance(m, torch.nn.Linear)] if net is not None else []
    arch = [m.out_features for m in linears[:-1]] if net is not None else list(net_arch)
    venv = VecMonitor(_venv(distribution, actions, num_envs, groups, workers, seed))
    try:
        model = PPO("MlpPolicy", venv, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size,
                    n_epochs=n_epochs, gamma=gamma, ent_coef=ent_coef, seed=seed, device="cpu", verbose=0,
                    policy_kwargs={"net_arch": {"pi": arch, "vf": arch}, "activation_fn": torch.nn.Tanh})
        targets = [m for m in list(model.policy.mlp_extractor.policy_net) + [model.policy.action_net]
                   if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for src, dst in zip(linears, targets):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
        model.learn(timesteps)
    finally:
        venv.close()
    layers, _ = policy_layers(model)
    return actor_from_layers(layers)


def actor_from_layers(layers: Sequence[tuple[Any, Any]]) -> Any:
    """A tanh MLP (``torch.nn.Sequential``) with these (weight, bias) layers, input first."""
    import torch

    out: list[Any] = []
    for w, b in layers:
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        out += [lin, torch.nn.Tanh()]
    return torch.nn.Sequential(*out[:-1])


def policy_predictor(net: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``obs -> greedy action indices`` of an actor network (for :func:`collect`)."""
    import torch

    def predict(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.as_tensor(obs, dtype=torch.float32)).argmax(1).numpy()

    return predict


def export_actor(net: Any, path: str, actions: str, provenance: Mapping[str, Any],
                 evaluation: Mapping[str, Any] | None = None) -> tuple[Any, Any]:
    """Write the actor as ``path.safetensors`` + ``path.json`` (the ordinary policy file format)."""
    from lrpilot.controller.policy import save_policy

    return save_policy(path, layers=actor_layers(net), activation="tanh", action=ActionSpec.parse(actions),
                       provenance=dict(provenance), evaluation=dict(evaluation) if evaluation else None)


def summarize_accs(accs: Sequence[float]) -> dict[str, float]:
    n = len(accs)
    mean = float(np.mean(accs)) if n else math.nan
    sd = float(np.std(accs, ddof=1)) if n > 1 else math.nan
    return {"n": n, "mean_test_acc": mean, "se": sd / math.sqrt(n) if n > 1 else math.nan}


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start


def train_population(*, teacher: str | None, actions: str, seed: int, bc_steps: int, finetune_timesteps: int,
                     num_envs: int, groups: int, workers: int, families: Sequence[str], net_arch: Sequence[int],
                     bc_epochs: int = 30, ppo: Mapping[str, Any] | None = None, console: Any = None,
                     state_dir: str | None = None, resume: bool = False, bc_augment: int = 0,
                     dagger_rounds: int = 0, dagger_steps: int | None = None) -> tuple[Any, dict]:
    """Behaviour cloning of ``teacher`` (if any) then PPO (``finetune_timesteps`` > 0) on the population env.

    ``bc_augment`` relabelled copies of each teacher observation with a redrawn budget fraction,
    and ``dagger_rounds`` rounds of ``dagger_steps`` (default ``bc_steps``) student rollouts labelled
    by the teacher, extend the cloning data (see :mod:`lrpilot.learn.imitation`).

    With ``state_dir``, every stage is checkpointed there (see :mod:`lrpilot.learn.pipeline_state`)
    and ``resume`` continues a killed run to the same result. Returns the actor network and a
    provenance dict (timings, sizes, agreement).
    """
    import torch

    from lrpilot.learn.imitation import clone_stage
    from lrpilot.learn.pipeline_state import PopulationCheckpoint

    torch.manual_seed(seed)
    spec = ActionSpec.parse(actions)
    if spec.kind != "discrete":
        raise ValueError("population training needs a discrete action set")
    if not teacher and finetune_timesteps <= 0:
        raise ValueError("nothing to train: give a teacher (--bc-from) and/or PPO timesteps (--finetune-timesteps)")
    info: dict[str, Any] = {"teacher": teacher, "bc_steps": bc_steps, "finetune_timesteps": finetune_timesteps,
                            "num_envs": num_envs, "groups": groups, "workers": workers, "families": list(families)}
    if teacher:
        info.update(bc_augment=bc_augment, dagger_rounds=dagger_rounds, dagger_steps=dagger_steps or bc_steps)
    settings = {**info, "actions": actions, "seed": seed, "bc_epochs": bc_epochs, "net_arch": list(net_arch),
                "ppo": dict(ppo or {})}
    state = PopulationCheckpoint(state_dir, settings, resume) if state_dir is not None else None
    start = time.perf_counter()
    env = {"distribution": synthetic_distribution(families), "actions": actions, "num_envs": num_envs,
           "groups": groups, "workers": workers, "seed": seed}
    net = clone_stage(teacher, env, spec, bc_steps, bc_epochs, net_arch, state, info, console) if teacher else None
    bc_net = net
    if finetune_timesteps > 0:
        saved = state.load("finetune") if state is not None else None
        if saved is None:
            t = time.perf_counter()
            net = ppo_finetune(net, timesteps=finetune_timesteps, net_arch=net_arch, **env, **dict(ppo or {}))
            saved = {"layers": actor_layers(net), "ppo_seconds": round(time.perf_counter() - t, 1)}
            if state is not None:
                state.save("finetune", saved)
        net = actor_from_layers(saved["layers"])
        info["ppo_seconds"] = saved["ppo_seconds"]
    info["training_seconds"] = round(time.perf_counter() - start, 1)
    if bc_net is not None and bc_net is not net:
        info["bc_net"] = bc_net  # the cloned actor before PPO (exported beside the final one)
    return net, info
