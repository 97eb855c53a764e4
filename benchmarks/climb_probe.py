"""Does the validation set see the late climb? Controllers on the validation tasks at long budgets and high LRs.

On the held-out grid, the two whole runs of ``configs/default.toml`` made in sessions 30 and 31 miss issue #16's (c)
(never more than 1 point below ``rule``), where the shipped default does not; one of the failures is a wine-mlp run
(20 epochs at interval 0.25 from 1e-2) whose training loss reached 0, after which the policy, as its base rule,
doubled the LR every quarter from its floor to the ceiling and diverged (docs/controller.md, session 31). The
validation set chooses checkpoints; if it is to choose against such policies, it must hold runs where that happens.
This plays the validation tasks (:data:`lrpilot.learn.validation.VALIDATION_TASKS`, data seeds reserved for
validation; no held-out data) at the budgets, LRs and interval given, with each controller, and prints per
controller: mean final test accuracy, divergences, runs that end at the LR ceiling (100x the initial LR), and per
(task, budget, LR) cell the mean accuracy difference to ``rule`` (the cells of (c)), with the worst cell.

    OMP_NUM_THREADS=1 python benchmarks/climb_probe.py policy:default policy:PATH bold-anneal-streakup \\
        --budgets 20 30 --lrs 1e-3 1e-2 --interval 0.25 --seeds 0 1 2 [--small] --json out.json
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path
from typing import Any

from lrpilot.controller import from_spec
from lrpilot.controller.actions import LR_BOUNDS
from lrpilot.learn.validation import VALIDATION_DATA_SEEDS, VALIDATION_TASKS, ValidationSet

SMALL_TASKS = tuple((task, {**options, "n_train": 128}) for task, options in VALIDATION_TASKS if task != "iris-mlp")
"""The synthetic validation tasks with 128 training examples, played whole every epoch: small enough that the
training loss reaches 0 within the budget, as on wine-mlp (about 100 training examples) and iris-mlp (90)."""
assert all(options["data_seed"] in VALIDATION_DATA_SEEDS for _, options in SMALL_TASKS)


def probe(specs: list[str], budgets: tuple[int, ...], lrs: tuple[float, ...], interval: str | None,
          seeds: tuple[int, ...], workers: int, small: bool = False) -> dict[str, Any]:
    """Every controller (``rule`` added first, as the reference) on the validation set's cases of the arguments
    (with ``small``, on :data:`SMALL_TASKS` instead)."""
    vs = ValidationSet(lrs=lrs, budgets=budgets, intervals=(interval,), seeds=seeds, workers=workers,
                       **({"tasks": SMALL_TASKS, "epoch_examples": None} if small else {}))
    played: dict[str, list[dict[str, Any]]] = {}
    for spec in ["rule", *[s for s in specs if s != "rule"]]:
        began = time.perf_counter()
        played[spec] = vs._play(functools.partial(from_spec, spec))  # noqa: SLF001 - the set's own runs, no oracle
        print(f"{spec}: {len(played[spec])} runs in {time.perf_counter() - began:.0f} s", flush=True)
    summary: dict[str, Any] = {}
    for spec, rows in played.items():
        cells: dict[str, list[float]] = {}
        for row, ref in zip(rows, played["rule"], strict=True):
            key = f"{row['label']} e{row['budget']} lr{row['initial_lr']:g}"
            cells.setdefault(key, []).append(100.0 * (row["acc"] - ref["acc"]))
        means = {k: statistics.fmean(v) for k, v in cells.items()}
        worst = min(means, key=means.get)
        summary[spec] = {"mean_test_acc": 100.0 * statistics.fmean(r["acc"] for r in rows),
                         "diverged": sum(bool(r["diverged"]) for r in rows),
                         "at_ceiling": sum(r["final_lr"] >= r["initial_lr"] * LR_BOUNDS[1] * 0.999 for r in rows),
                         "cells_below_rule_by_1": sorted(k for k, v in means.items() if v < -1.0),
                         "worst_cell": worst, "worst_cell_points": means[worst], "cells": means}
    return {"tasks": [list(t) for t in vs.tasks], "budgets": budgets, "lrs": lrs, "interval": interval, "seeds": seeds,
            "summary": summary,
            "rows": {spec: [{k: r[k] for k in ("label", "budget", "initial_lr", "session_seed", "acc", "diverged",
                                                 "final_lr")} for r in rows] for spec, rows in played.items()}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse, play, print a table, write the JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="controller specs (rule is always played, as the reference)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 30])
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 1e-2])
    parser.add_argument("--interval", default="0.25", help="control interval ('none': per epoch)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--small", action="store_true", help="the synthetic validation tasks at 128 training examples")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    interval = None if args.interval.lower() == "none" else args.interval
    result = probe(args.specs, tuple(args.budgets), tuple(args.lrs), interval, tuple(args.seeds), args.workers,
                   args.small)
    print("\n| controller | mean acc | diverged | end at LR ceiling | cells > 1 point below rule | worst cell |")
    print("|---|---:|---:|---:|---|---|")
    for spec, s in result["summary"].items():
        print(f"| {spec} | {s['mean_test_acc']:.2f} | {s['diverged']} | {s['at_ceiling']} | "
              f"{len(s['cells_below_rule_by_1'])} | {s['worst_cell']} {s['worst_cell_points']:+.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
