"""Replay one run's recorded metrics through several controllers: what each would answer at every decision.

    .venv/bin/python benchmarks/replay_decisions.py RUN/metrics.jsonl --lr 1e-2 --epochs 20 --per-epoch 4 \
        --from 9 --to 52 policy:default bold-anneal-streakup rule

Every controller sees the same history (the run's ``metrics.jsonl``, as ``lrpilot train`` / ``evaluate-controller``
write it), so this is open loop: the answers after the first one that differs from the run's own are what the
controller would say to that history, not what it would have made of its own run. Prints each controller's
multipliers for decisions ``--from`` to ``--to`` (1-based). Session 31 (docs/controller.md).
"""

from __future__ import annotations

import argparse
import json

from lrpilot.controller import from_spec
from lrpilot.metrics import EpochMetrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics")
    parser.add_argument("controllers", nargs="+")
    parser.add_argument("--lr", type=float, required=True, help="the run's initial LR")
    parser.add_argument("--epochs", type=int, required=True, help="the run's budget in epochs")
    parser.add_argument("--per-epoch", type=int, default=1, help="decisions per epoch (4 at --interval 0.25)")
    parser.add_argument("--from", dest="first", type=int, default=1)
    parser.add_argument("--to", dest="last", type=int, default=None)
    args = parser.parse_args()
    with open(args.metrics) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    history = [EpochMetrics.from_dict(row) for row in rows if "final" not in row]  # the last line is the summary
    last = args.last or len(history)
    print(f"{'decision':>40s} " + " ".join(f"{i:>5d}" for i in range(args.first, last + 1)))
    print(f"{'LR the run had':>40s} " + " ".join(f"{m.lr:5.0e}" for m in history[args.first - 1:last]))
    for spec in args.controllers:
        controller = from_spec(spec)
        controller.reset(args.lr, args.epochs, args.per_epoch)
        answers = [controller.act(metrics) for metrics in history[:last]]
        print(f"{spec:>40s} " + " ".join(f"{x:5.2g}" for x in answers[args.first - 1:]))


if __name__ == "__main__":
    main()
