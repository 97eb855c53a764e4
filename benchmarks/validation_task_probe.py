"""Score controllers on one candidate validation task, before it joins the validation set (issue #16, session 17).

A task earns a place in the validation set if it separates checkpoints that the held-out grid separates. This
plays one (task, options) pair as :class:`~lrpilot.learn.validation.ValidationSet` plays its tasks (initial LRs
1e-4, 1e-3, 1e-2, or ``--lrs``; budgets 6 and 20; per epoch and at interval 0.25; seeds 0 and 1; regret to the best
constant LR) for each controller, and prints the mean regret and its split by interval and initial LR. Nothing here
is the held-out grid: use a data seed that neither training (0 to 7) nor a held-out task uses (103 and up).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/validation_task_probe.py \\
        --options '{"arch": "transformer", "width": 32, "depth": 4, "classes": 4, "seq_len": 16, "n_train": 64,
                    "pretrain": 8192, "batch_size": 8, "optimizer": "adam", "data_seed": 103}' \\
        --controllers rule,bold,policy:default --workers 2
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time

from lrpilot.controller import from_spec
from lrpilot.learn.validation import ValidationSet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="seq-cnn", help="the registered task the options override")
    parser.add_argument("--options", required=True, help="the task options, as JSON")
    parser.add_argument("--controllers", default="rule,bold,policy:default")
    parser.add_argument("--budgets", default="6,20")
    parser.add_argument("--lrs", default="1e-4,1e-3,1e-2", help="initial LRs (the validation set's by default)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as err:
        parser.error(f"--options is not JSON: {err}")
    try:
        lrs = tuple(float(lr) for lr in args.lrs.split(","))
    except ValueError:
        parser.error(f"--lrs: {args.lrs!r} is not comma-separated numbers")
    vs = ValidationSet(tasks=((args.task, options),), budgets=tuple(int(b) for b in args.budgets.split(",")),
                       intervals=(None, "0.25"), lrs=lrs, workers=args.workers)
    start = time.perf_counter()
    oracle = vs.oracle()
    print(f"oracle (best constant LR per budget, interval, seed): "
          f"{', '.join(f'{100 * v:.1f}' for v in oracle.values())}  ({time.perf_counter() - start:.0f} s)")
    print("| controller | mean regret | per epoch | at 0.25 | " + " | ".join(f"LR {lr:g}" for lr in lrs) + " |")
    print("| --- " * (4 + len(lrs)) + "|")
    columns = [lambda r: True, lambda r: r["interval"] is None, lambda r: r["interval"] == "0.25"]
    columns += [lambda r, lr=lr: r["initial_lr"] == lr for lr in vs.lrs]
    for spec in args.controllers.split(","):
        rows = vs.evaluate(functools.partial(from_spec, spec))["rows"]
        cells = [f"{statistics.fmean(r['regret'] for r in rows if keep(r)):.2f}" for keep in columns]
        print(f"| {spec} | " + " | ".join(cells) + " |", flush=True)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
