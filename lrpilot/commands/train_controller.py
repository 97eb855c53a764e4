"""``lrpilot train-controller``: train a PPO learning-rate controller and export its policy file."""

from __future__ import annotations

import argparse
import shlex

from lrpilot.commands.common import key_value, non_negative_int, parse_option_value, positive_float, positive_int



def _float_pair(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}")
    return positive_float(parts[0]), positive_float(parts[1])


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(positive_int(p) for p in text.split(","))


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from lrpilot.learn.ppo import PPOConfig

    d = PPOConfig()
    add = parser.add_argument
    add("--tasks", default=",".join(d.tasks), help=f"comma-separated task names (default {','.join(d.tasks)})")
    add("--lr-range", type=_float_pair, default=d.lr_range, metavar="LOW,HIGH",
        help="initial LRs drawn log-uniformly (default 1e-4,1e-1)")
    add("--epochs", type=positive_int, default=d.epochs, help=f"epochs per episode (default {d.epochs})")
    add("--timesteps", type=positive_int, default=d.timesteps, help=f"total env steps (default {d.timesteps})")
    add("--seed", type=non_negative_int, default=d.seed, help="seed (default 0)")
    add("--n-envs", type=positive_int, default=d.n_envs, help="parallel environments (default 1; >1 uses processes)")
    add("--actions", default=d.actions, help="'0.1,0.5,1,2' (default), 'continuous' or 'continuous:LO,HI'")
    add("--reward", default=d.reward, help="log_val_loss (default), final_acc or final_loss")
    add("--out", default=d.out_dir, help=f"output directory: TensorBoard, checkpoints, eval (default {d.out_dir})")
    add("--name", default=d.name, help=f"policy name: NAME.safetensors + NAME.json (default {d.name})")
    add("--export-dir", help="directory for the policy files (default: --out)")
    add("--resume", action="store_true",
        help="continue the run in --out from its latest checkpoint (without it, an --out that holds one is refused)")
    add("--checkpoint-every", type=positive_int, default=d.checkpoint_every, help="timesteps between checkpoints")
    add("--eval-every", type=non_negative_int, default=d.eval_every, help="timesteps between held-out evaluations (0: end only)")
    add("--eval-lrs", type=positive_int, default=d.eval_lrs, help="held-out initial LRs per task (log-spaced)")
    add("--eval-seeds", type=positive_int, default=d.eval_seeds, help="held-out session seeds per task and LR")
    add("--device", default=d.device, help="device of the training sessions (default cpu)")
    add("--epoch-examples", type=positive_int, help="training examples per epoch (default: all)")
    add("--option", type=key_value, action="append", default=[], metavar="KEY=VALUE", help="task option (repeatable)")
    add("--n-steps", type=positive_int, default=d.n_steps, help="PPO rollout length per env")
    add("--batch-size", type=positive_int, default=d.batch_size, help="PPO minibatch size")
    add("--n-epochs", type=positive_int, default=d.n_epochs, help="PPO epochs per rollout")
    add("--ppo-lr", type=positive_float, default=d.learning_rate, help="PPO learning rate")
    add("--gamma", type=positive_float, default=d.gamma, help="discount factor")
    add("--gae-lambda", type=positive_float, default=d.gae_lambda, help="GAE lambda")
    add("--ent-coef", type=float, default=d.ent_coef, help="entropy coefficient")
    add("--net-arch", type=_int_list, default=d.net_arch, metavar="N,N", help="hidden layer sizes (default 64,64)")
    add("--threads", type=positive_int, default=d.torch_threads, help="torch threads per process (default 1)")
    add("--no-progress", action="store_true", help="no progress bar")
    pop = parser.add_argument_group("population training (lrpilot.learn.pipeline): many synthetic episodes at once")
    pop.add_argument("--population", action="store_true",
                     help="train on the population env over the synthetic TaskDistribution instead of --tasks")
    pop.add_argument("--bc-from", metavar="TEACHER",
                     help="behaviour-clone this hand rule first (bold, bold2, bold-anneal, ...); implies --population")
    pop.add_argument("--bc-steps", type=positive_int, default=200, help="teacher rollout vector steps (default 200)")
    pop.add_argument("--bc-epochs", type=positive_int, default=30, help="behaviour-cloning epochs (default 30)")
    pop.add_argument("--bc-augment", type=non_negative_int, default=0,
                     help="relabelled copies of each teacher observation with a redrawn budget fraction (default 0)")
    pop.add_argument("--dagger-rounds", type=non_negative_int, default=0,
                     help="DAgger rounds: student rollouts labelled by the teacher, then clone again (default 0)")
    pop.add_argument("--dagger-steps", type=positive_int, help="vector steps per DAgger round (default: --bc-steps)")
    pop.add_argument("--finetune-timesteps", type=non_negative_int, default=0,
                     help="PPO env steps after cloning (or from scratch without --bc-from; default 0)")
    pop.add_argument("--population-envs", type=positive_int, default=64, help="population members (default 64)")
    pop.add_argument("--population-groups", type=positive_int, default=4, help="task groups (default 4)")
    pop.add_argument("--population-workers", type=positive_int, default=2, help="worker processes (default 2)")
    pop.add_argument("--families", default="teacher,gmm,seq",
                     help="synthetic data families to train on (default teacher,gmm,seq: no real data)")


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - PPOConfig
    """The :class:`PPOConfig` of parsed arguments, with the canonical command recorded."""
    from lrpilot.learn.ppo import PPOConfig

    config = PPOConfig(
        tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()), lr_range=tuple(args.lr_range),
        epochs=args.epochs, timesteps=args.timesteps, seed=args.seed, n_envs=args.n_envs, actions=args.actions,
        reward=args.reward, out_dir=args.out, name=args.name, export_dir=args.export_dir, resume=args.resume,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, eval_lrs=args.eval_lrs,
        eval_seeds=args.eval_seeds, device=args.device, epoch_examples=args.epoch_examples,
        task_options={k: parse_option_value(v) for k, v in args.option}, n_steps=args.n_steps,
        batch_size=args.batch_size, n_epochs=args.n_epochs, learning_rate=args.ppo_lr, gamma=args.gamma,
        gae_lambda=args.gae_lambda, ent_coef=args.ent_coef, net_arch=tuple(args.net_arch), torch_threads=args.threads,
    )
    config.validate()
    config.command = command_line(config)
    return config


def command_line(config) -> str:  # noqa: ANN001 - PPOConfig
    """The ``lrpilot train-controller`` command that reproduces ``config`` (every setting spelled out)."""
    parts = [
        "lrpilot", "train-controller", "--tasks", ",".join(config.tasks),
        "--lr-range", ",".join(f"{v:g}" for v in config.lr_range), "--epochs", str(config.epochs),
        "--timesteps", str(config.timesteps), "--seed", str(config.seed), "--n-envs", str(config.n_envs),
        "--actions", config.actions, "--reward", config.reward, "--out", str(config.out_dir), "--name", config.name,
        "--checkpoint-every", str(config.checkpoint_every), "--eval-every", str(config.eval_every),
        "--eval-lrs", str(config.eval_lrs), "--eval-seeds", str(config.eval_seeds), "--device", config.device,
        "--n-steps", str(config.n_steps), "--batch-size", str(config.batch_size), "--n-epochs", str(config.n_epochs),
        "--ppo-lr", f"{config.learning_rate:g}", "--gamma", f"{config.gamma:g}", "--gae-lambda", f"{config.gae_lambda:g}",
        "--ent-coef", f"{config.ent_coef:g}", "--net-arch", ",".join(map(str, config.net_arch)),
        "--threads", str(config.torch_threads),
    ]
    if config.export_dir:
        parts += ["--export-dir", str(config.export_dir)]
    if config.epoch_examples:
        parts += ["--epoch-examples", str(config.epoch_examples)]
    for key, value in sorted(config.task_options.items()):
        parts += ["--option", f"{key}={value}"]
    if config.resume:
        parts.append("--resume")
    return shlex.join(parts)


def run_population(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """The ``--population`` / ``--bc-from`` path: behaviour cloning and/or PPO on the population env."""
    import sys
    from pathlib import Path

    from rich.console import Console

    from lrpilot.learn.export import export_policy
    from lrpilot.learn.pipeline import train_population

    console = Console()
    command = shlex.join(["lrpilot", "train-controller", *(sys.argv[1:] if argv is None else argv)[1:]])
    ppo = {"learning_rate": args.ppo_lr, "n_steps": args.n_steps, "batch_size": args.batch_size,
           "n_epochs": args.n_epochs, "ent_coef": args.ent_coef, "gamma": args.gamma}
    result = train_population(
        teacher=args.bc_from, actions=args.actions, seed=args.seed, bc_steps=args.bc_steps,
        finetune_timesteps=args.finetune_timesteps, num_envs=args.population_envs, groups=args.population_groups,
        workers=args.population_workers, families=tuple(f.strip() for f in args.families.split(",") if f.strip()),
        net_arch=tuple(args.net_arch), bc_epochs=args.bc_epochs, ppo=ppo, console=console, state_dir=args.out,
        resume=args.resume, bc_augment=args.bc_augment, dagger_rounds=args.dagger_rounds, dagger_steps=args.dagger_steps)
    info = result.provenance
    out = Path(args.export_dir or args.out)
    out.mkdir(parents=True, exist_ok=True)
    if result.bc_actor is not None:  # BC + PPO: keep the cloned actor too, for the ablation
        export_policy(result.bc_actor, out / f"{args.name}-bc", args.actions,
                      {"method": "population", "command": command, "seed": args.seed, "stage": "behaviour cloning only",
                       **{k: v for k, v in info.items() if k not in ("ppo_seconds", "training_seconds")}})
    provenance = {"method": "population", "command": command, "seed": args.seed, "actions": args.actions,
                  "net_arch": list(args.net_arch), "ppo": ppo, **info}
    card, weights = export_policy(result.actor, out / args.name, args.actions, provenance)
    console.print(f"trained in {info['training_seconds']:.0f} s; policy written to {card} and {weights}")
    return 0


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrpilot.learn.ppo import train_controller

    if args.population or args.bc_from:
        return run_population(args)

    config = config_from_args(args)
    console = Console()
    console.print(f"[bold]train-controller[/] {config.name}: tasks={','.join(config.tasks)} "
                  f"lr={config.lr_range[0]:g}..{config.lr_range[1]:g} epochs={config.epochs} "
                  f"timesteps={config.timesteps} n_envs={config.n_envs} seed={config.seed} out={config.out_dir}")
    result = train_controller(config, console=console, progress=not args.no_progress)
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
