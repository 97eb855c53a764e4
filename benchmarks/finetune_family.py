"""Does a synthetic fine-tune reproduce what the shipped policy gets wrong on MiniLM? (issue #16, item (c))

On ``minilm-sentiment`` at LR 1e-4 the shipped ``policy:default`` raises the LR after a good first epoch and
ends 2 to 3 points below ``rule``, which keeps it (docs/controller.md). The question asked here, before any
training: does a synthetic *fine-tune* (``options["pretrain"]``: a pretrained MLP body, a fresh head, a small
target set; :mod:`lrpilot.training.synthetic`) show the same loss, so that training on it could teach the
policy not to raise? If the policy already matches ``rule`` on it, the family carries no such signal.

For each task: final test accuracy of ``constant`` at the validation set's oracle LRs (1e-5 to 1e-1, half a
decade apart), then of each controller at ``--lrs``, per budget, mean over ``--seeds``. The tasks use data
seeds 50 and 51, which neither the training distribution (0 to 7) nor the validation set (100 to 102) uses,
and which no held-out task has.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/finetune_family.py \
        --pretrain 8192 --width 128 --depth 2 [--body-scale 0.03] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections import defaultdict
from statistics import fmean

from lrpilot.controller import from_spec
from lrpilot.learn.validation import ORACLE_LRS, ValidationSet


def table(rows: list[dict]) -> dict[tuple[str, int, float], float]:
    """Mean accuracy (percent) per (task, budget, initial LR) of one controller's rows."""
    cells: dict[tuple[str, int, float], list[float]] = defaultdict(list)
    for row in rows:
        cells[(row["task"], row["budget"], row["initial_lr"])].append(row["acc"])
    return {key: round(100 * fmean(values), 1) for key, values in cells.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain", type=int, default=8192, help="source examples (0: trained from scratch)")
    parser.add_argument("--n-train", type=int, default=128, help="target training examples")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--body-scale", type=float, default=1.0, help="a fragile body (1: as pretrained)")
    parser.add_argument("--budgets", default="6,20")
    parser.add_argument("--lrs", default="1e-4,1e-3,1e-2")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--controllers", default="rule,bold,policy:default")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args()
    shape = {"n_train": args.n_train, "width": args.width, "depth": args.depth, "batch_size": args.batch_size,
             **({"pretrain": args.pretrain} if args.pretrain else {}),
             **({"body_scale": args.body_scale} if args.body_scale != 1.0 else {})}
    tasks = (("teacher-mlp", {"data_seed": 50, "classes": 5, **shape}),
             ("gmm-mlp", {"data_seed": 51, "classes": 4, **shape}))
    budgets = tuple(int(b) for b in args.budgets.split(","))
    lrs = tuple(float(x) for x in args.lrs.split(","))
    common = {"tasks": tasks, "budgets": budgets, "seeds": tuple(range(args.seeds)), "workers": args.workers}
    start = time.perf_counter()
    sweep = ValidationSet(lrs=ORACLE_LRS, **common).evaluate(functools.partial(from_spec, "constant"))
    constant = table(sweep["rows"])
    print(f"## {json.dumps(shape)}\n\nconstant LR (mean test accuracy, %):\n")
    print("| task | budget | " + " | ".join(f"{lr:g}" for lr in ORACLE_LRS) + " |")
    print("| --- | --- |" + " --- |" * len(ORACLE_LRS))
    for task, _ in tasks:
        for budget in budgets:
            cells = " | ".join(str(constant[(task, budget, lr)]) for lr in ORACLE_LRS)
            print(f"| {task} | {budget} | {cells} |")
    specs = args.controllers.split(",")
    results = {spec: table(ValidationSet(lrs=lrs, **common).evaluate(functools.partial(from_spec, spec))["rows"])
               for spec in specs}
    print("\ncontrollers (mean test accuracy, %):\n")
    print("| task | budget | LR | " + " | ".join(specs) + " |")
    print("| --- | --- | --- |" + " --- |" * len(specs))
    for task, _ in tasks:
        for budget in budgets:
            for lr in lrs:
                cells = " | ".join(str(results[s][(task, budget, lr)]) for s in specs)
                print(f"| {task} | {budget} | {lr:g} | {cells} |")
    print(f"\n{time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"shape": shape, "constant": {repr(k): v for k, v in constant.items()},
                       "controllers": {s: {repr(k): v for k, v in r.items()} for s, r in results.items()}},
                      out, indent=1)


if __name__ == "__main__":
    main()
