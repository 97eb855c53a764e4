"""A policy's mean regret on the validation set's 4 standing tasks alone (issue #16, session 16).

A recipe that draws fine-tunes is validated on 120 runs: the 96 of ``VALIDATION_TASKS`` (4 tasks × LR 1e-4, 1e-3,
1e-2 × 6 and 20 epochs × per epoch and interval 0.25 × 2 seeds) and 24 of ``FINETUNE_VALIDATION_TASK``. This plays
the 96 alone, so that a checkpoint's gain on the fine-tune can be told from a loss on the other tasks (the rule of
docs/data/s16-decision.md, condition 2). Deterministic: the same policy gives the same number on any worker count.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/validation_old_tasks.py policy:default [policy:PATH ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import functools

from lrpilot.controller import from_spec
from lrpilot.learn.validation import ValidationSet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="controller specs, e.g. policy:default")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    validation = ValidationSet(intervals=(None, "0.25"), workers=args.workers)
    for spec in args.specs:
        result = validation.evaluate(functools.partial(from_spec, spec))
        print(f"{spec}: regret {result['mean_regret']:.2f} points, test acc {result['mean_test_acc']:.2f}%, "
              f"n {result['n']}", flush=True)


if __name__ == "__main__":
    main()
