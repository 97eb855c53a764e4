"""Fast controller training on the population environment: behaviour cloning of a hand rule,
then (optionally) PPO fine-tuning; the result is a plain MLP actor in the policy file format.

* The teacher is one of :data:`~lrpilot.controller.teachers.TEACHERS`: a hand rule written as a
  function of the observation vector (the same features a policy sees), so a network can imitate
  it exactly. With an action set without its multipliers (×1.5 with ×{0.1, 0.5, 1, 2}), the
  nearest action in log scale is taken (×2).
* :func:`~lrpilot.learn.imitation.clone_stage` collects the teacher's rollouts on the population
  env (:mod:`lrpilot.learn.rollouts`) and clones them, with relabelled copies and DAgger rounds.
* :func:`ppo_finetune` (optional) starts SB3 PPO with the cloned actor as its policy network.
* :func:`train_population` runs both, resumably (:mod:`lrpilot.learn.pipeline_state`); the
  caller writes the actor with :func:`~lrpilot.learn.export.export_policy`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from lrpilot.controller.actions import ActionSpec
from lrpilot.learn.export import actor_from_layers, actor_layers
from lrpilot.learn.imitation import clone_stage
from lrpilot.learn.pipeline_state import PopulationCheckpoint
from lrpilot.learn.rollouts import synthetic_distribution

__all__ = ["PopulationResult", "ppo_finetune", "train_population", "validation_set"]


def ppo_finetune(net: Any, *, distribution: Any, actions: str, timesteps: int, num_envs: int = 64, groups: int = 4,
                 workers: int = 2, seed: int = 0, learning_rate: float = 1e-4, n_steps: int = 32,
                 batch_size: int = 512, n_epochs: int = 5, ent_coef: float = 0.0, gamma: float = 0.99,
                 net_arch: Sequence[int] = (64, 64), encoder_version: int = 1, **env_options: Any) -> Any:
    """SB3 PPO whose actor starts from ``net`` (the cloned MLP; None: from scratch with ``net_arch``);
    returns the trained actor as a Sequential. ``env_options`` go to the population environment
    (``twin="bold"``, ``budget_end="terminal"``, ``interval``, ``undo``). Validation, the best checkpoint
    and TensorBoard: :func:`~lrpilot.learn.population_ppo.train_population_ppo`."""
    from lrpilot.learn.population_ppo import train_population_ppo

    return train_population_ppo(net, distribution=distribution, actions=actions, timesteps=timesteps,
                                num_envs=num_envs, groups=groups, workers=workers, seed=seed,
                                learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size,
                                n_epochs=n_epochs, ent_coef=ent_coef, gamma=gamma, net_arch=net_arch,
                                encoder_version=encoder_version, env_options=env_options).actor


@dataclass
class PopulationResult:
    """What :func:`train_population` produced."""

    actor: Any
    """The trained actor (``torch.nn.Sequential``): the clone, or the PPO fine-tuned actor."""
    bc_actor: Any | None
    """The cloned actor before PPO fine-tuning (exported beside the final one); None without both stages."""
    provenance: dict[str, Any]
    """JSON-ready settings, sizes, agreement and timings (``training_seconds``...) for the policy file."""
    validated: dict[int, Any] = field(default_factory=dict)
    """PPO's validated actors by step (the validation curve's ``timesteps``); empty without validation."""


def validation_set(distribution: Any, workers: int, seeds: int = 2, first_seed: int = 0,
                   finetune_lrs: Sequence[float] | None = None) -> Any:
    """The :class:`~lrpilot.learn.validation.ValidationSet` of a recipe training on ``distribution``: every control
    interval it draws, and a pretrained transformer's fine-tune of the shape it draws when it draws those
    (``finetune_prob`` > 0; played from ``finetune_lrs`` when given, else from the set's LRs), played with
    ``seeds`` session seeds from ``first_seed``."""
    from lrpilot.learn.validation import VALIDATION_TASKS, ValidationSet, finetune_validation_task

    finetune = (finetune_validation_task(distribution.finetune_shape),) if distribution.finetune_prob else ()
    if finetune_lrs is not None and not finetune:
        raise ValueError("finetune_validation_lrs: the validation set holds a fine-tune only when the recipe draws "
                         "fine-tunes (finetune_prob > 0)")
    tasks = VALIDATION_TASKS + finetune
    validation = ValidationSet(intervals=tuple(None if v == 1.0 else str(v) for v in distribution.intervals),
                               workers=workers, tasks=tasks, seeds=tuple(range(first_seed, first_seed + seeds)))
    if finetune_lrs is not None:
        validation = replace(validation, task_lrs={validation.labels[-1]: tuple(float(v) for v in finetune_lrs)})
    return validation


def confirm_best(start: Any, best: Any, validation: Any, actions: str, base: str | None = None) -> dict[str, Any]:
    """Play PPO's starting actor and its best checkpoint on ``validation`` (seeds the pick did not see): their mean
    regrets, the paired difference (best minus start; wins are runs where the best's regret is lower) and whether
    the best is lower (``confirmed``)."""
    from scipy import stats

    from lrpilot.learn.population_ppo import validate_actor

    first, second = (validate_actor(a, actions, validation, base) for a in (start, best))
    diffs = [b["regret"] - a["regret"] for a, b in zip(first["rows"], second["rows"])]
    nonzero = [d for d in diffs if d != 0]
    p = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else None
    return {"seeds": list(validation.seeds), "n": len(diffs), "start": round(first["mean_regret"], 4),
            "best": round(second["mean_regret"], 4), "best_minus_start": round(sum(diffs) / len(diffs), 4),
            "wins": sum(d < 0 for d in diffs), "ties": len(diffs) - len(nonzero), "losses": sum(d > 0 for d in diffs),
            "wilcoxon_p": None if p is None else round(p, 4), "confirmed": second["mean_regret"] < first["mean_regret"]}


def _finetune_stage(net: Any, state: PopulationCheckpoint | None, env: Mapping[str, Any], timesteps: int,
                    net_arch: Sequence[int], ppo: Mapping[str, Any], options: Mapping[str, Any],
                    validate_every: int, console: Any, checkpoint_every: int = 0,
                    validation_seeds: int = 2, confirm_seeds: int = 0,
                    finetune_validation_lrs: Sequence[float] | None = None
                    ) -> tuple[Any, dict[str, Any], dict[int, Any]]:
    """The fine-tuned actor (saved in ``state``, or trained and saved; with ``validate_every``, the one with the
    lowest validation regret, and with ``confirm_seeds``, only if it is lower than the start on that many further
    seeds too: :func:`confirm_best`), what to record of the stage (seconds, steps/s, the validation curve) and
    every validated actor by step.
    With ``state``, PPO's progress is saved every ``checkpoint_every`` steps (``finetune-progress``) and a
    resumed run continues from it."""
    from lrpilot.learn.population_ppo import train_population_ppo

    saved = state.load("finetune") if state is not None else None
    if saved is None:
        validation = None
        if validate_every > 0:
            # the population's workers wait while the validation runs: it may use as many processes (a core each)
            validation = validation_set(env["distribution"], min(int(env["workers"]), os.cpu_count() or 1),
                                        validation_seeds, finetune_lrs=finetune_validation_lrs)
        t = time.perf_counter()
        tb = str(state.dir.parent / "tb") if state is not None else None
        progress = state.load("finetune-progress") if state is not None else None
        if progress is not None and console is not None:
            console.print(f"resuming PPO at {progress['timesteps']} of {timesteps} steps")
        result = train_population_ppo(net, timesteps=timesteps, net_arch=net_arch, env_options=options,
                                      validation=validation, validate_every=validate_every, tensorboard_log=tb,
                                      console=console, checkpoint_every=checkpoint_every if state is not None else 0,
                                      save_progress=state.saver("finetune-progress") if state is not None else None,
                                      resume_from=progress, **env, **ppo)
        spent = (progress or {}).get("wall_seconds", 0.0) + time.perf_counter() - t  # validations included
        record: dict[str, Any] = {"ppo_seconds": round(spent, 1),
                                  "ppo_steps_per_second": round(result.steps_per_second, 1)}
        if result.curve:
            record.update(validation_curve=result.curve, validation_best=result.best)
        if result.return_trend:
            record["return_trend"] = result.return_trend
        chosen = result.best_actor
        if confirm_seeds and net is not None and result.best is not None and result.best["timesteps"] > 0:
            fresh = validation_set(env["distribution"], validation.workers, confirm_seeds, first_seed=validation_seeds,
                                   finetune_lrs=finetune_validation_lrs)
            record["validation_confirm"] = confirm = confirm_best(net, chosen, fresh, env["actions"], ppo.get("base"))
            chosen = chosen if confirm["confirmed"] else net
            if console is not None:
                which = "best" if confirm["confirmed"] else "start"
                console.print(f"confirmation on seeds {confirm['seeds']}: best {confirm['best']:.2f}, start "
                              f"{confirm['start']:.2f} points: exporting the {which}")
        saved = {"layers": actor_layers(chosen)[0], "record": record,
                 "validated": {str(step): actor_layers(actor)[0] for step, actor in result.validated.items()}}
        if state is not None:
            state.save("finetune", saved)
            state.path("finetune-progress").unlink(missing_ok=True)
    record = saved.get("record") or {"ppo_seconds": saved["ppo_seconds"]}  # states saved before the record
    validated = {int(step): actor_from_layers(layers) for step, layers in saved.get("validated", {}).items()}
    return actor_from_layers(saved["layers"]), record, validated


def _initial_actor(init_policy: str | None, residual: str | None, spec: Any, actions: str,
                   encoder_version: int) -> Any:
    """The actor PPO starts from (None: a clone or scratch); ``ValueError`` in one line when ``init_policy`` does
    not fit the recipe: a residual goes on as a residual on the same rule, a plain policy as a plain one, with the
    same actions and observation encoder."""
    if init_policy is None:
        return None
    from lrpilot.controller.policy import load_policy

    initial = load_policy(init_policy)
    if initial.base != residual:
        kind = f"a residual on the rule {initial.base!r}" if initial.base else "a plain policy"
        wanted = f"residual = {initial.base!r}" if initial.base else "no residual"
        raise ValueError(f"init_policy: {init_policy!r} is {kind}; set {wanted}")
    if initial.action_spec != spec:
        raise ValueError(f"init_policy: {init_policy!r} acts with actions = {str(initial.action_spec)!r}; "
                         f"this recipe's are {actions!r}")
    if initial.raise_power:
        raise ValueError(f"init_policy: {init_policy!r} raises at rates per epoch (raise_power = "
                         f"{initial.raise_power:g}), which PPO's environments do not apply to the actor; start from "
                         "a policy without raise_power")
    # raise_power_pretrained (the shipped default's, session 28) is let through: PPO's environments never tell a
    # controller that its run is pretrained, so they play such a policy as they always did; the export omits it.
    if initial.encoder.version != encoder_version:
        raise ValueError(f"init_policy: {init_policy!r} reads observation encoder v{initial.encoder.version}; "
                         f"set encoder_version = {initial.encoder.version}")
    return initial.actor


_STABILISE_DEFAULTS = {"retention_steps": 1, "retention_on": "all"}


def train_population(*, teacher: str | None, actions: str, seed: int, bc_steps: int, finetune_timesteps: int,
                     num_envs: int, groups: int, workers: int, families: Sequence[str], net_arch: Sequence[int],
                     bc_epochs: int = 30, ppo: Mapping[str, Any] | None = None, console: Any = None,
                     state_dir: str | None = None, resume: bool = False, bc_augment: int = 0,
                     dagger_rounds: int = 0, dagger_steps: int | None = None,
                     encoder_version: int = 1, epochs_range: Sequence[int] = (4, 30), twin: str | None = None,
                     budget_end: str = "truncated", init_policy: str | None = None,
                     validate_every: int = 0, stabilise: Mapping[str, Any] | None = None,
                     checkpoint_every: int = 0, residual: str | None = None,
                     redraw: str = "cut", intervals: Sequence[float] = (1.0,),
                     width_range: Sequence[int] = (16, 128), cnn_width_range: Sequence[int] | None = None,
                     seq_len: int = 32, finetune_prob: float = 0.0,
                     finetune_shape: str = "transformer", validation_seeds: int = 2,
                     finetune_lr_range: Sequence[float] | None = None, confirm_seeds: int = 0,
                     finetune_validation_lrs: Sequence[float] | None = None,
                     val_examples: int | None = None) -> PopulationResult:
    """Behaviour cloning of ``teacher`` (if any) then PPO (``finetune_timesteps`` > 0) on the population env.

    ``encoder_version`` chooses the observation encoder; the teachers read version-1 features,
    which keep their positions in version 2. ``intervals`` (fractions of an epoch) are drawn per task
    group, and the validation set plays each of them; ``width_range`` bounds the drawn models' widths
    (``cnn_width_range`` the CNNs' channels, when given; ``seq_len`` is the sequence family's length);
    ``finetune_prob`` of the ``seq`` draws are a pretrained transformer's fine-tune of ``finetune_shape``, and the
    validation set then holds one too (:func:`~lrpilot.learn.validation.finetune_validation_task`), and they start
    from an initial LR drawn from ``finetune_lr_range`` (None: the range of every draw); each validation
    plays every case with ``validation_seeds`` session seeds (the fine-tune from ``finetune_validation_lrs`` when
    given), and ``confirm_seeds`` more check the pick (:func:`confirm_best`). ``val_examples`` sets every
    draw's validation examples (None: each draw's own).

    ``bc_augment`` relabelled copies of each teacher observation with a redrawn budget fraction,
    and ``dagger_rounds`` rounds of ``dagger_steps`` (default ``bc_steps``) student rollouts labelled
    by the teacher, extend the cloning data (see :mod:`lrpilot.learn.imitation`).

    With ``state_dir``, every stage is checkpointed there (see :mod:`lrpilot.learn.pipeline_state`)
    and ``resume`` continues a killed run: to the same result, except inside PPO, which continues from
    its last progress checkpoint (every ``checkpoint_every`` steps; see
    :mod:`lrpilot.learn.population_ppo`, "Resuming").
    """
    import torch

    torch.manual_seed(seed)
    finetune_lr_range = None if finetune_lr_range is None else tuple(float(v) for v in finetune_lr_range)
    if finetune_validation_lrs is not None:
        finetune_validation_lrs = [float(v) for v in finetune_validation_lrs]
        if not finetune_prob or validate_every <= 0:
            raise ValueError("finetune_validation_lrs: they are the validation fine-tune's initial LRs, so they need "
                             "finetune_prob > 0 and validate_every > 0")
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
    if encoder_version != 1:  # only then: state directories of version-1 runs stay resumable as they were
        settings["encoder_version"] = info["encoder_version"] = encoder_version
    # critic_warmup, retention, retention_until, retention_steps, retention_on: recorded only when not the default
    stabilise = {k: v for k, v in (stabilise or {}).items() if v and v != _STABILISE_DEFAULTS.get(k)}
    extra = {"epochs_range": list(epochs_range), "twin": twin, "budget_end": budget_end, "init_policy": init_policy,
             "validate_every": validate_every, "stabilise": stabilise, "residual": residual,
             "redraw": redraw, "intervals": [float(v) for v in intervals], "width_range": list(width_range),
             "cnn_width_range": None if cnn_width_range is None else list(cnn_width_range), "seq_len": seq_len,
             "finetune_prob": float(finetune_prob), "finetune_shape": finetune_shape,
             "validation_seeds": validation_seeds,
             "finetune_lr_range": None if finetune_lr_range is None else list(finetune_lr_range),
             "confirm_seeds": confirm_seeds, "finetune_validation_lrs": finetune_validation_lrs,
             "val_examples": val_examples}
    defaults = {"epochs_range": [4, 30], "twin": None, "budget_end": "truncated", "init_policy": None,
                "validate_every": 0, "stabilise": {}, "residual": None,
                "redraw": "cut", "intervals": [1.0], "width_range": [16, 128], "cnn_width_range": None,
                "seq_len": 32, "finetune_prob": 0.0, "finetune_shape": "transformer", "validation_seeds": 2,
                "finetune_lr_range": None, "confirm_seeds": 0, "finetune_validation_lrs": None,
                "val_examples": None}
    for key, value in extra.items():  # recorded (and checked on resume) only when not the default, as above
        if value != defaults[key]:
            settings[key] = info[key] = value
    options = {k: v for k, v in (("twin", twin), ("budget_end", budget_end), ("redraw", redraw)) if v != defaults[k]}
    if residual is not None and teacher:
        raise ValueError("residual: PPO trains the residual from its start at the rule or at init_policy (no teacher)")
    initial = _initial_actor(init_policy, residual, spec, actions, encoder_version)  # checked before any state is made
    state = PopulationCheckpoint(state_dir, settings, resume) if state_dir is not None else None
    if state is not None and state.shortened_from is not None:
        info["finetune_timesteps_planned"] = state.shortened_from
    start = time.perf_counter()
    distribution = synthetic_distribution(families, epochs_range=tuple(epochs_range),
                                          intervals=tuple(float(v) for v in intervals), width_range=tuple(width_range),
                                          cnn_width_range=None if cnn_width_range is None else tuple(cnn_width_range),
                                          seq_len=seq_len, finetune_prob=float(finetune_prob),
                                          finetune_shape=finetune_shape, finetune_lr_range=finetune_lr_range,
                                          val_examples=val_examples)
    env = {"distribution": distribution, "actions": actions, "num_envs": num_envs,
           "groups": groups, "workers": workers, "seed": seed, "encoder_version": encoder_version}
    net, bc_net, validated = initial, None, {}
    if teacher:
        clone = clone_stage(teacher, env, spec, bc_steps=bc_steps, bc_epochs=bc_epochs, net_arch=net_arch,
                            augment=bc_augment, dagger_rounds=dagger_rounds, dagger_steps=dagger_steps,
                            state=state, console=console)
        net = bc_net = clone.actor
        info.update(clone.provenance())
    if finetune_timesteps > 0:
        ppo_options = {**(ppo or {}), **stabilise, **({"base": residual} if residual else {})}
        net, record, validated = _finetune_stage(net, state, env, finetune_timesteps, net_arch, ppo_options,
                                      options, validate_every, console, checkpoint_every, validation_seeds,
                                      confirm_seeds, finetune_validation_lrs)
        info.update(record)
    if state is not None:  # every process of a resumed run counts, not only this one
        info["training_seconds"] = round(state.record_seconds(), 1)
    else:
        info["training_seconds"] = round(time.perf_counter() - start, 1)
    return PopulationResult(actor=net, bc_actor=bc_net if bc_net is not net else None, provenance=info,
                            validated=validated)
