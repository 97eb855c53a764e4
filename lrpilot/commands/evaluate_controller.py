"""``lrpilot evaluate-controller``: learned controllers against the classic schedules on held-out tasks.

Regret to the per-task oracle, mean rank, per-initial-LR tables (printed, and written to
``OUT/evaluation.md`` and ``OUT/evaluation.json``); the runs go through the compare runner
(a study per controller in ``OUT/runs/<controller>``, the LR-free optimisers in ``OUT/runs/lrfree``),
so a second invocation resumes and only re-tabulates. The scoring and the tables are those of
``lrpilot compare`` (:mod:`lrpilot.experiments.scoring`); the terminal tables fit 80 columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lrpilot.commands.common import add_interval_flags, interval_settings, non_negative_float, positive_float, positive_int

HELDOUT_TASKS = ("digits-mlp", "digits-cnn", "breast-cancer-mlp", "wine-mlp")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _lrs(text: str) -> tuple[float, ...]:
    return tuple(positive_float(t) for t in _csv(text))


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from lrpilot.experiments.controller_eval import DEFAULT_BASELINES, DEFAULT_LRFREE

    add = parser.add_argument
    add("specs", nargs="+", metavar="SPEC", help="controller(s) to evaluate, e.g. policy:default policy:runs/x/policy")
    add("--tasks", type=_csv, default=HELDOUT_TASKS,
        help=f"comma-separated held-out tasks (default {','.join(HELDOUT_TASKS)})")
    add("--lrs", type=_lrs, default=(1e-5, 1e-4, 1e-3, 1e-2), help="comma-separated initial LRs (default 1e-5,1e-4,1e-3,1e-2)")
    add("--optimizers", type=_csv, default=("adam", "adamw"), help="comma-separated optimisers (default adam,adamw)")
    add("--seeds", type=positive_int, default=3, help="seeds per setting (default 3)")
    add("--epochs", type=positive_int, help="epoch budget (default: each task's)")
    add("--weight-decay", type=non_negative_float, help="weight decay of every run (default: each task's, 0 for "
        "the built-in tasks; set it, e.g. 0.01, for AdamW to differ from Adam)")
    add_interval_flags(parser)
    add("--baselines", type=_csv, default=DEFAULT_BASELINES, help=f"baseline specs (default {','.join(DEFAULT_BASELINES)})")
    add("--lrfree", type=_csv, default=DEFAULT_LRFREE,
        help=f"LR-free optimisers run with the constant controller ('' for none; default {','.join(DEFAULT_LRFREE)})")
    add("--device", default="cpu", help="device (default cpu)")
    add("--import", action="append", dest="imports", default=[], metavar="MODULE", help="module to import first (repeatable)")
    add("--workers", type=positive_int, help="parallel runs (default: one per CPU core)")
    add("--out", type=Path, required=True, help="results directory")
    add("--force", action="store_true", help="delete results of a different evaluation in --out")
    add("--no-progress", action="store_true", help="no live progress display")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrpilot.experiments.controller_eval import EvaluationPlan, run_evaluation

    console = Console()
    plan = EvaluationPlan(specs=tuple(args.specs), tasks=tuple(args.tasks), lrs=tuple(args.lrs), seeds=args.seeds,
                          epochs=args.epochs, weight_decay=args.weight_decay, optimizers=tuple(args.optimizers),
                          baselines=tuple(args.baselines), lrfree=tuple(args.lrfree), device=args.device,
                          imports=tuple(args.imports), **interval_settings(args))
    n = len(plan.tasks) * len(plan.lrs) * len(plan.optimizers) * plan.seeds * len(set(plan.specs) | set(plan.baselines))
    console.print(f"[bold]evaluate-controller[/] {n} runs + {len(plan.tasks) * len(plan.lrfree) * plan.seeds} LR-free runs "
                  f"-> {args.out}")
    tables = run_evaluation(plan, args.out, workers=args.workers, console=console, progress=not args.no_progress,
                            force=args.force)
    if tables["failed"]:
        console.print(f"[red]{len(tables['failed'])} run(s) failed[/]; run the same command again to retry them")
        return 1
    return 0
