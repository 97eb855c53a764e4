"""Play a recipe's validation set with other session seeds: does a checkpoint's validation gain replicate? (issue #16)

``lrpilot train-controller`` keeps the checkpoint with the lowest regret on its validation set, played with
session seeds 0 and 1. Between two validations one PPO update apart the score moves by up to 0.9 points
(session 19), so the lowest of eight scores is partly chosen for its noise. This plays the same set (the same tasks,
initial LRs, budgets and intervals; the oracle's constant LRs too) with other session seeds, which change the
initial weights and the data order and nothing else, and prints each controller's mean regret, its split by task,
and its paired difference from the first controller (mean over the runs, wins/ties/losses, and a two-sided
Wilcoxon signed-rank p). Nothing here is the held-out grid.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/validation_reseed.py configs/ppo-residual-cliff.toml \\
        --seeds 2,3 --controllers policy:default,policy:docs/data/s19/cont-s2/ppo-residual-cliff --workers 2

``--seeds 0,1`` reproduces the scores the training run recorded (a check of this script). The fine-tune of a
recipe with ``finetune_validation_lrs`` is played from those LRs, as in training (``--finetune-validation-lrs``
overrides them); ``--only LABEL,...`` plays some of the tasks, and ``--per-lr`` adds each task's mean test accuracy
and mean log final validation loss (what the twin reward optimises) per initial LR.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

from lrpilot.controller import from_spec
from lrpilot.learn.pipeline import validation_set
from lrpilot.learn.recipe import load_recipe


def paired(new: list[float], old: list[float]) -> str:
    """Mean difference in regret (new minus old; negative: new is better), wins/ties/losses of new, Wilcoxon p."""
    from scipy.stats import wilcoxon

    diff = [a - b for a, b in zip(new, old)]
    wins, losses = sum(d < -1e-9 for d in diff), sum(d > 1e-9 for d in diff)
    p = wilcoxon(diff).pvalue if wins + losses else 1.0
    return f"{statistics.fmean(diff):+.2f} ({wins}/{len(diff) - wins - losses}/{losses}, p = {p:.2g})"


def mean_log_loss(rows: list[dict]) -> str:
    """The mean log of the final validation loss (the twin reward's objective) over ``rows``' finite ones, and how
    many were not finite."""
    logs = [math.log(r["final_val_loss"]) for r in rows
            if r["final_val_loss"] is not None and math.isfinite(r["final_val_loss"]) and r["final_val_loss"] > 0]
    shown = f"{statistics.fmean(logs):+.3f}" if logs else "n/a"
    return shown + (f", {len(rows) - len(logs)} not finite" if len(logs) < len(rows) else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path, help="the recipe (TOML) whose validation set to play")
    parser.add_argument("--seeds", default="2,3", help="session seeds (the training run's are 0,1)")
    parser.add_argument("--controllers", default="policy:default",
                        help="comma-separated controller specs; differences are taken from the first")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--finetune-validation-lrs", metavar="LRS",
                        help="the fine-tune's initial LRs (default: the recipe's finetune_validation_lrs, or the set's)")
    parser.add_argument("--only", metavar="LABELS", help="play only these tasks (labels as printed: seq-cnn[1], ...)")
    parser.add_argument("--per-lr", action="store_true",
                        help="also print mean test accuracy and log final val loss per task and initial LR")
    args = parser.parse_args()
    try:
        recipe = load_recipe(args.recipe)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    distribution = recipe.distribution()
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        parser.error(f"--seeds: {args.seeds!r} is not comma-separated whole numbers")
    specs = args.controllers.split(",")
    lrs = recipe.finetune_validation_lrs
    if args.finetune_validation_lrs:
        try:
            lrs = tuple(float(v) for v in args.finetune_validation_lrs.split(","))
        except ValueError:
            parser.error(f"--finetune-validation-lrs: {args.finetune_validation_lrs!r} is not comma-separated numbers")
    try:
        vs = replace(validation_set(distribution, args.workers, finetune_lrs=lrs), seeds=seeds)
    except ValueError as err:
        parser.error(str(err))
    if args.only:
        keep = args.only.split(",")
        unknown = sorted(set(keep) - set(vs.labels))
        if unknown:
            parser.error(f"--only: no task labelled {', '.join(unknown)}; the labels are {', '.join(vs.labels)}")
        old = [label for label in vs.labels if label in keep]
        kept = replace(vs, tasks=tuple(task for label, task in zip(vs.labels, vs.tasks) if label in keep), task_lrs={})
        vs = replace(kept, task_lrs={new: vs.task_lrs[was] for new, was in zip(kept.labels, old) if was in vs.task_lrs})
    start = time.perf_counter()
    vs.oracle()
    print(f"{args.recipe}, seeds {seeds}: {len(vs.tasks)} tasks, oracle played in {time.perf_counter() - start:.0f} s",
          flush=True)
    print("| controller | mean regret | " + " | ".join(vs.labels) + f" | minus {specs[0]} |")
    print("| --- " * (3 + len(vs.labels)) + "|")
    first: list[float] | None = None
    for spec in specs:
        result = vs.evaluate(functools.partial(from_spec, spec))
        regrets = [r["regret"] for r in result["rows"]]
        versus = "" if first is None else paired(regrets, first)
        first = regrets if first is None else first
        cells = [f"{result['per_task_regret'][label]:.2f}" for label in vs.labels]
        print(f"| {spec} | {result['mean_regret']:.2f} | " + " | ".join(cells) + f" | {versus} |", flush=True)
        if args.per_lr:
            for label, interval in itertools.product(vs.labels, vs.intervals):
                rows = [r for r in result["rows"] if r["label"] == label and r["interval"] == interval]
                by_lr = {lr: [r for r in rows if r["initial_lr"] == lr] for lr in sorted({r["initial_lr"] for r in rows})}
                print(f"  {spec} {label} interval {interval or 1}: "
                      + "  ".join(f"{lr:g}: {statistics.fmean(100 * r['acc'] for r in runs):.1f}% "
                                  f"(log val loss {mean_log_loss(runs)})" for lr, runs in by_lr.items()), flush=True)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
