"""``lrpilot train-controller [RECIPE.toml]``: train a learning-rate controller and export its policy file.

The recipe file (:mod:`lrpilot.learn.recipe`) says what to train; each flag overrides one of
its fields. Without a recipe, the defaults of :class:`~lrpilot.learn.recipe.Recipe` apply
(a short PPO run on the digits tasks).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from lrpilot.commands.common import key_value, non_negative_int, parse_option_value, positive_float, positive_int

_SKIP = argparse.SUPPRESS  # a flag not given leaves the recipe's field alone


def _float_pair(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}")
    return positive_float(parts[0]), positive_float(parts[1])


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(positive_int(p) for p in text.split(","))


def _float_list(text: str) -> tuple[float, ...]:
    return tuple(positive_float(p) for p in text.split(","))


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _field_flag(group: Any, flag: str, dest: str, **kwargs: Any) -> None:
    """A flag that overrides the recipe field ``dest`` when given (and leaves it alone when not)."""
    group.add_argument(flag, dest=dest, default=_SKIP, **kwargs)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from lrpilot.learn.recipe import Recipe

    d = Recipe()
    parser.add_argument("recipe", nargs="?", type=Path,
                        help="recipe TOML file (each flag below overrides one field), e.g. configs/default.toml, "
                        "policy:default's two stages one after the other (a staged recipe takes --out, --name, "
                        "--export-dir and --resume only); without one: a short residual PPO run "
                        "(configs/ppo-residual-1m.toml on MLP tasks of 4-12 epochs, 131,072 steps, 2 minutes on 2 CPU "
                        "cores) (--method ppo or --bc-from: the plain defaults)")
    add = functools.partial(_field_flag, parser)
    add("--method", "method", choices=("ppo", "population"), help="ppo: PPO on LRControlEnv; population: "
        "cloning/DAgger/PPO on the population env")
    add("--population", "method", action="store_const", const="population", help="same as --method population")
    add("--tasks", "tasks", type=_names, help=f"comma-separated task names (default {','.join(d.tasks)})")
    add("--lr-range", "lr_range", type=_float_pair, metavar="LOW,HIGH", help="initial LRs drawn log-uniformly "
        "(default 1e-4,1e-1)")
    add("--epochs", "epochs", type=positive_int, help=f"epochs per episode (default {d.epochs})")
    add("--timesteps", "timesteps", type=positive_int, help=f"total env steps (default {d.timesteps})")
    add("--seed", "seed", type=non_negative_int, help="seed (default 0)")
    add("--n-envs", "n_envs", type=positive_int, help="parallel environments (default 1; >1 uses processes)")
    add("--actions", "actions", help="'0.1,0.5,1,2' (default), 'continuous' or 'continuous:LO,HI'")
    add("--reward", "reward", help="log_val_loss (default), final_acc or final_loss")
    add("--out", "out_dir", help=f"output directory: TensorBoard, checkpoints, eval (default {d.out_dir})")
    add("--name", "name", help=f"policy name: NAME.safetensors + NAME.json (default {d.name})")
    add("--export-dir", "export_dir", help="directory for the policy files (default: --out)")
    add("--resume", "resume", action="store_true",
        help="continue the run in --out from its latest checkpoint (without it, an --out that holds one is refused)")
    add("--checkpoint-every", "checkpoint_every", type=positive_int, help="timesteps between checkpoints")
    add("--eval-every", "eval_every", type=non_negative_int, help="timesteps between held-out evaluations (0: end only)")
    add("--eval-lrs", "eval_lrs", type=positive_int, help="held-out initial LRs per task (log-spaced)")
    add("--eval-seeds", "eval_seeds", type=positive_int, help="held-out session seeds per task and LR")
    add("--device", "device", help="device of the training sessions (default cpu)")
    add("--epoch-examples", "epoch_examples", type=positive_int, help="training examples per epoch (default: all)")
    add("--option", "task_options", type=key_value, action="append", metavar="KEY=VALUE",
        help="task option (repeatable; added to the recipe's task_options)")
    add("--n-steps", "n_steps", type=positive_int, help="PPO rollout length per env")
    add("--batch-size", "batch_size", type=positive_int, help="PPO minibatch size")
    add("--n-epochs", "n_epochs", type=positive_int, help="PPO epochs per rollout")
    add("--ppo-lr", "learning_rate", type=positive_float, help="PPO learning rate")
    add("--gamma", "gamma", type=positive_float, help="discount factor")
    add("--gae-lambda", "gae_lambda", type=positive_float, help="GAE lambda")
    add("--ent-coef", "ent_coef", type=float, help="entropy coefficient")
    add("--net-arch", "net_arch", type=_int_list, metavar="N,N", help="hidden layer sizes (default 64,64)")
    add("--encoder-version", "encoder_version", type=positive_int,
        help="observation encoder: 1 (default) or 2 (adds the budget's size and undo; the shipped policy's)")
    add("--threads", "torch_threads", type=positive_int,
        help="torch threads of the training process, both methods (default 1; weights depend on it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_population_arguments(parser)


def _add_population_arguments(parser: argparse.ArgumentParser) -> None:
    pop = parser.add_argument_group("method population (lrpilot.learn.pipeline): many synthetic episodes at once")
    add = functools.partial(_field_flag, pop)
    add("--bc-from", "teacher", metavar="TEACHER",
        help="behaviour-clone this hand rule first (bold, bold2, bold-anneal, ...); implies --method population")
    add("--bc-steps", "bc_steps", type=positive_int, help="teacher rollout vector steps (default 200)")
    add("--bc-epochs", "bc_epochs", type=positive_int, help="behaviour-cloning epochs (default 30)")
    add("--bc-augment", "bc_augment", type=non_negative_int,
        help="relabelled copies of each teacher observation with a redrawn budget fraction (default 0)")
    add("--dagger-rounds", "dagger_rounds", type=non_negative_int,
        help="DAgger rounds: student rollouts labelled by the teacher, then clone again (default 0)")
    add("--dagger-steps", "dagger_steps", type=positive_int, help="vector steps per DAgger round (default: --bc-steps)")
    add("--finetune-timesteps", "finetune_timesteps", type=non_negative_int,
        help="PPO env steps after cloning (or from scratch without --bc-from; default 0)")
    add("--population-envs", "population_envs", type=positive_int, help="population members (default 64)")
    add("--population-groups", "population_groups", type=positive_int, help="task groups (default 4)")
    add("--population-workers", "population_workers", type=positive_int, help="worker processes (default 2)")
    add("--families", "families", type=_names,
        help="synthetic data families to train on (default teacher,gmm,seq: no real data)")
    add("--epochs-range", "epochs_range", type=_int_list, metavar="LO,HI",
        help="episode budgets in epochs, drawn uniformly (default 4,30)")
    add("--intervals", "intervals", type=_float_list, metavar="F,F",
        help="control intervals in epochs, drawn per task group (default 1; e.g. 1,0.25)")
    add("--width-range", "width_range", type=_int_list, metavar="LO,HI",
        help="hidden widths of the drawn models, log-uniform (default 16,128)")
    add("--cnn-width-range", "cnn_width_range", type=_int_list, metavar="LO,HI",
        help="channels of the drawn CNNs, log-uniform (default: --width-range)")
    add("--seq-len", "seq_len", type=positive_int, help="sequence length of the seq family's draws (default 32)")
    add("--finetune-prob", "finetune_prob", type=float, metavar="P",
        help="share of the seq family's draws that fine-tune a pretrained transformer (default 0); the validation "
             "set then holds such a fine-tune too")
    add("--finetune-shape", "finetune_shape", choices=("transformer", "cliff", "steep"),
        help="which fine-tune those draws are (default transformer; cliff: falls to chance from 10x its best LR; "
             "steep: the cliff with a fragile body, best near 1e-4)")
    add("--finetune-lr-range", "finetune_lr_range", type=_float_list, metavar="LO,HI",
        help="initial LRs of the fine-tune draws, log-uniform (default: those of every draw, 1e-5,1e-1)")
    add("--val-examples", "val_examples", type=positive_int, metavar="N",
        help="validation examples of every drawn task (default: each draw's own, 512; fewer are cheaper, noisier)")
    add("--finetune-validation-lrs", "finetune_validation_lrs", type=_float_list, metavar="LRS",
        help="initial LRs the validation set's fine-tune is played from (default: the set's, 1e-4,1e-3,1e-2)")
    add("--twin", "twin", metavar="SPEC",
        help="PPO reward against a twin of each episode driven by this controller (e.g. bold-anneal-streakup)")
    add("--budget-end", "budget_end", choices=("truncated", "terminal"),
        help="how PPO episodes end at their budget (default truncated; terminal: no bootstrap past it)")
    add("--init-policy", "init_policy", metavar="POLICY",
        help="start PPO from this policy's actor instead of a clone: clone, a path, or default (a residual: "
             "with --residual bold-anneal-streakup)")
    add("--redraw", "redraw", choices=("cut", "drain"),
        help="what a task redraw does to running episodes (default cut; drain: each finishes on the old task)")
    add("--residual", "residual", metavar="TEACHER",
        help="train a residual policy on this rule (e.g. bold-anneal-streakup): rule's multiplier x the action's")
    add("--critic-warmup", "critic_warmup", type=non_negative_int,
        help="PPO steps during which only the critic learns (default 0)")
    add("--retention", "retention", type=float,
        help="weight of the KL-to-the-starting-actor loss, decaying to 0 (default 0: none)")
    add("--retention-until", "retention_until", type=non_negative_int,
        help="PPO step where the retention weight reaches 0 (default: half of --finetune-timesteps)")
    add("--retention-steps", "retention_steps", type=positive_int,
        help="gradient steps on the retention loss before each rollout (default 1)")
    add("--retention-on", "retention_on", choices=("all", "from-scratch"),
        help="states the retention loss is taken on (default all; from-scratch: not on fine-tune draws)")
    add("--validate-every", "validate_every", type=non_negative_int,
        help="PPO steps between validation-set scores; the best actor is exported (default 0: none)")
    add("--validation-seeds", "validation_seeds", type=positive_int,
        help="session seeds each validation plays every case with (default 2)")
    add("--confirm-seeds", "confirm_seeds", type=non_negative_int,
        help="replay the best checkpoint and PPO's start with this many further seeds; export the best only if "
             "it is lower there too (default 0: no check)")


def recipe_from_args(args: argparse.Namespace):  # noqa: ANN201 - Recipe or StagedRecipe
    """The recipe file with every given flag applied; without one, the short version of the long PPO recipe
    (:func:`~lrpilot.learn.recipe.quick_recipe`), or with ``--method ppo`` or ``--bc-from`` the plain
    defaults. A staged recipe (:mod:`lrpilot.learn.stages`) takes ``--out``, ``--name``, ``--export-dir`` and
    ``--resume`` only. ``ValueError`` names a bad field."""
    from lrpilot.learn.recipe import Recipe, quick_recipe
    from lrpilot.learn.stages import StagedRecipe, load_any_recipe

    given = {k: v for k, v in vars(args).items() if k not in ("recipe", "no_progress", "command")}
    if args.recipe is not None:
        recipe = load_any_recipe(args.recipe)
        if isinstance(recipe, StagedRecipe):
            return recipe.replace(**given)
    elif "method" in given or "teacher" in given:
        recipe = Recipe()
    else:
        recipe = quick_recipe()
    if "task_options" in given:
        given["task_options"] = {**recipe.task_options, **{k: parse_option_value(v) for k, v in given["task_options"]}}
    if "teacher" in given and "method" not in given:
        given["method"] = "population"  # --bc-from implies the population method
    return recipe.replace(**given)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrpilot.learn.stages import StagedRecipe

    recipe = recipe_from_args(args)
    console = Console()
    if isinstance(recipe, StagedRecipe):
        return _run_staged(recipe, console)
    if recipe.method == "population":
        return _run_population(recipe, console)
    return _run_ppo(recipe, console, progress=not args.no_progress)


def _run_staged(staged: Any, console: Any) -> int:
    """Each stage as a one-stage population run in ``OUT/STAGE``, then the last stage's policy as ``OUT/NAME``
    with every stage in its card (:mod:`lrpilot.learn.stages`)."""
    import hashlib
    import json
    import time

    from lrpilot.controller.policy import load_policy
    from lrpilot.learn.export import export_policy
    from lrpilot.learn.pipeline_state import STATE_DIR
    from lrpilot.learn.ppo import recorded_recipe

    exports: dict[str, Path] = {}
    stages: list[dict[str, Any]] = []
    began = time.perf_counter()
    for number, stage in enumerate(staged.stages, 1):
        out = staged.stage_dir(stage)
        recipe = stage.resolved(out, exports)
        resume = staged.resume and (out / STATE_DIR / "run.json").exists()  # a stage not begun starts afresh
        console.print(f"[bold]stage {number} of {len(staged.stages)}: {stage.name}[/] in {out}"
                      f"{' (resumed)' if resume else ''}")
        _run_population(recipe.replace(resume=resume), console)
        exports[stage.name] = path = staged.stage_policy(stage)
        weights = Path(f"{path}.safetensors")
        card = json.loads(Path(f"{path}.json").read_text())  # its training time counts every process of the stage
        stages.append({"name": stage.name, "recipe": recorded_recipe(recipe), "policy": str(path),
                       "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                       "seconds": card["provenance"]["training_seconds"]})
    last = staged.stages[-1]  # ``card`` is its stage's
    provenance = {**card["provenance"], "stages": stages,
                  "staged": {"source": staged.source, "name": staged.name, "out_dir": staged.out_dir}}
    out = Path(staged.export_dir or staged.out_dir)
    card_path, weights_path = export_policy(load_policy(exports[last.name]).actor, out / staged.name,
                                            last.recipe.actions, provenance, base=last.recipe.residual,
                                            powers=staged.card)
    seconds = ", ".join(f"{s['name']} {s['seconds']:.0f} s" for s in stages)
    console.print(f"{len(stages)} stages in {time.perf_counter() - began:.0f} s ({seconds}); the last stage's policy "
                  f"written to {card_path} and {weights_path}")
    return 0


def _run_population(recipe: Any, console: Any) -> int:
    """Behaviour cloning and/or PPO on the population env; the policy card records the recipe."""
    import torch

    from lrpilot.learn.export import export_policy
    from lrpilot.learn.pipeline import train_population
    from lrpilot.learn.ppo import recorded_recipe

    ppo = {"learning_rate": recipe.learning_rate, "n_steps": recipe.n_steps, "batch_size": recipe.batch_size,
           "n_epochs": recipe.n_epochs, "ent_coef": recipe.ent_coef, "gamma": recipe.gamma}
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.torch_threads)  # restored below: the caller's setting is not ours to keep
    try:
        result = train_population(
            teacher=recipe.teacher, actions=recipe.actions, seed=recipe.seed, bc_steps=recipe.bc_steps,
            finetune_timesteps=recipe.finetune_timesteps, num_envs=recipe.population_envs,
            groups=recipe.population_groups, workers=recipe.population_workers, families=recipe.families,
            net_arch=recipe.net_arch, bc_epochs=recipe.bc_epochs, ppo=ppo, console=console, state_dir=recipe.out_dir,
            resume=recipe.resume, bc_augment=recipe.bc_augment, dagger_rounds=recipe.dagger_rounds,
            dagger_steps=recipe.dagger_steps, encoder_version=recipe.encoder_version,
            epochs_range=recipe.epochs_range, twin=recipe.twin, budget_end=recipe.budget_end,
            init_policy=recipe.init_policy, validate_every=recipe.validate_every, residual=recipe.residual,
            redraw=recipe.redraw, intervals=recipe.intervals, width_range=recipe.width_range,
            cnn_width_range=recipe.cnn_width_range, seq_len=recipe.seq_len, finetune_prob=recipe.finetune_prob,
            finetune_shape=recipe.finetune_shape, validation_seeds=recipe.validation_seeds,
            finetune_lr_range=recipe.finetune_lr_range, confirm_seeds=recipe.confirm_seeds,
            finetune_validation_lrs=recipe.finetune_validation_lrs,
            val_examples=recipe.val_examples,
            stabilise={"critic_warmup": recipe.critic_warmup, "retention": recipe.retention,
                       "retention_until": recipe.retention_until, "retention_steps": recipe.retention_steps,
                       "retention_on": recipe.retention_on},
            checkpoint_every=recipe.checkpoint_every)
    finally:
        torch.set_num_threads(threads)
    info = result.provenance
    out = Path(recipe.export_dir or recipe.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = {"method": "population", "recipe": recorded_recipe(recipe)}
    if result.bc_actor is not None:  # BC + PPO: keep the cloned actor too, for the ablation
        export_policy(result.bc_actor, out / f"{recipe.name}-bc", recipe.actions,
                      {**base, "stage": "behaviour cloning only",
                       **{k: v for k, v in info.items() if k not in ("ppo_seconds", "training_seconds")}})
    card, weights = export_policy(result.actor, out / recipe.name, recipe.actions, {**base, **info},
                                  base=recipe.residual)
    console.print(f"trained in {info['training_seconds']:.0f} s; policy written to {card} and {weights}")
    if result.validated:  # every checkpoint the validation scored, to replay or pick again without retraining
        scores = {entry["timesteps"]: entry for entry in info.get("validation_curve", [])}
        for step, actor in sorted(result.validated.items()):
            export_policy(actor, out / "validated" / f"{recipe.name}-{step}", recipe.actions,
                          {**base, "stage": "validated checkpoint", "timesteps": step,
                           "validation": scores.get(step)}, base=recipe.residual)
        console.print(f"{len(result.validated)} validated checkpoints written to {out / 'validated'}")
    return 0


def _run_ppo(recipe: Any, console: Any, progress: bool) -> int:
    from lrpilot.learn.ppo import train_controller

    console.print(f"[bold]train-controller[/] {recipe.name}: tasks={','.join(recipe.tasks)} "
                  f"lr={recipe.lr_range[0]:g}..{recipe.lr_range[1]:g} epochs={recipe.epochs} "
                  f"timesteps={recipe.timesteps} n_envs={recipe.n_envs} seed={recipe.seed} out={recipe.out_dir}")
    result = train_controller(recipe, console=console, progress=progress)
    ev = result.evaluation["controllers"]
    duel = result.evaluation["ppo_vs_rule_test_acc"]
    console.print(f"trained {result.timesteps} steps in {result.seconds:.0f} s ({result.steps_per_second:.1f} env steps/s)")
    for name in ("ppo", "rule"):
        s = ev[name]
        acc = "n/a" if s["mean_test_acc"] is None else f"{100 * s['mean_test_acc']:.2f}%"
        console.print(f"held-out {name:>4}: mean test acc {acc} (n={s['n']}), mean return {s['mean_return']:.3f}, "
                      f"diverged {s['diverged']}")
    console.print(f"ppo vs rule (paired, test acc): better {duel['better']}, equal {duel['equal']}, worse {duel['worse']}")
    console.print(f"policy written to {result.card_path} and {result.weights_path}")
    return 0
