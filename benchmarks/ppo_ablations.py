"""Issue #16's ablations (validation set only): variants of configs/ppo-residual-1m.toml at 100k PPO steps.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ppo_ablations.py [VARIANT ...] [--out runs/h16/ablations]
    .venv/bin/python benchmarks/ppo_ablations.py --table [--out runs/h16/ablations]   # the table, from the cards

Each variant changes one thing of the shipped recipe (cut to 100k steps, validated at 0 and 100k; the
exported actor is the one the validation set prefers):

* ``residual``: the recipe itself (residual on ``bold-anneal-streakup``, twin reward, encoder v2);
* ``log-loss``: no twin: the per-step log validation loss reward;
* ``scratch``: a plain policy from a random network (no residual), twin reward;
* ``clone``: a behaviour clone of the rule (200 vector steps of teacher rollouts, 30 epochs), then PPO
  with a retention loss toward the clone (weight 1, decaying to 0 by 50k) and 8,192 steps of critic
  warm-up, twin reward;
* ``v1``: encoder version 1 (no budget size in the observation).

The last row of the table is the recipe's own long run (its card in ``--long``; 1M steps when it
finished). Variants are resumable (a finished one is skipped; ``--resume`` semantics of
``train-controller``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

STEPS = 100_000
VARIANTS = {
    "residual": {},
    "log-loss": {"twin": None},
    "scratch": {"residual": None, "critic_warmup": 0},
    "clone": {"residual": None, "teacher": "bold-anneal-streakup", "bc_steps": 200, "bc_epochs": 30,
              "retention": 1.0, "retention_until": 50_000},
    "v1": {"encoder_version": 1},
}


def run(variant: str, out: Path) -> None:
    from rich.console import Console

    from lrpilot.commands.train_controller import _run_population
    from lrpilot.learn.recipe import load_recipe

    card = out / variant / f"{variant}.json"
    if card.exists():
        return
    recipe = load_recipe("configs/ppo-residual-1m.toml").replace(
        finetune_timesteps=STEPS, validate_every=STEPS, name=variant, out_dir=str(out / variant),
        resume=(out / variant / "population-state").exists(), **VARIANTS[variant])
    _run_population(recipe, Console())


def table(out: Path, long: Path | None) -> str:
    rows = ["| variant | validation regret at 0 | at 100k | exported (best) | PPO steps/s |", "| --- | --- | --- | --- | --- |"]
    cards = [(v, out / v / f"{v}.json") for v in VARIANTS] + ([("residual, the long run (--long)", long)] if long else [])
    for name, path in cards:
        if not path.exists():
            continue
        prov = json.loads(path.read_text())["provenance"]
        curve = {e["timesteps"]: e["mean_regret"] for e in prov.get("validation_curve", [])}
        at100 = min(curve, key=lambda t: abs(t - STEPS)) if curve else None
        best = prov.get("validation_best") or {}
        rows.append(f"| {name} | {curve.get(0, float('nan')):.2f} | {curve.get(at100, float('nan')):.2f} | "
                    f"{best.get('mean_regret', float('nan')):.2f} (step {best.get('timesteps')}) | "
                    f"{prov.get('ppo_steps_per_second')} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help=f"some of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/h16/ablations"))
    parser.add_argument("--long", type=Path, help="the 1M-step run's card, for the table's last row")
    parser.add_argument("--table", action="store_true", help="print the table from the finished cards")
    args = parser.parse_args()
    if args.table:
        print(table(args.out, args.long))
        return
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
    for variant in args.variants or VARIANTS:
        run(variant, args.out)


if __name__ == "__main__":
    main()
