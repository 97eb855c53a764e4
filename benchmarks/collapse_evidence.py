"""The evidence ``+guard`` judges a collapse by, measured on the MiniLM fine-tune at several LRs.

    PYTHONPATH=benchmarks OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/collapse_evidence.py \\
        --lrs 1e-5,1e-4,1e-3,1e-2 --intervals 4

For each LR and seed, a session of ``--task`` (default ``minilm-sentiment``; Adam, interval ``--interval``,
default 0.25, no controller) is validated before training and after each of the first ``--intervals``
intervals; one JSON line per measurement: validation loss and accuracy, the share of predictions in the
most predicted class (``top``), the spread of the outputs over inputs (``spread``; docs/controller.md,
"The guard"), the interval's mean training loss and its spread over the minibatches, and how far the
interval moved the weights (``displacement``: the norm of the change of all parameters over the norm of
the parameters at the interval's start, ``EpochMetrics.weight_change`` of a session that keeps snapshots).
"""

from __future__ import annotations

import argparse
import json

import minilm_sentiment  # noqa: F401 - registers the task
import minilm_products  # noqa: F401

from lrpilot.training import TrainingSession, get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="minilm-sentiment")
    parser.add_argument("--lrs", default="1e-5,1e-4,1e-3,1e-2")
    parser.add_argument("--intervals", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.25, help="fraction of an epoch per interval")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    args = parser.parse_args()
    for lr in (float(x) for x in args.lrs.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            session = TrainingSession(get_task(args.task).with_overrides(lr=lr), seed=seed, interval=args.interval,
                                      device="cpu", undo=True)  # undo=True: it measures weight_change
            start = session.evaluate("val")
            print(json.dumps({"task": args.task, "lr": lr, "seed": seed, "epochs": 0.0, "val_loss": start["loss"],
                              "val_acc": start["acc"], "top": start["top_share"], "spread": start["spread"],
                              "chance_loss": start["chance_loss"], "majority": start["majority_share"]}), flush=True)
            for _ in range(args.intervals):
                m = session.run_interval()
                print(json.dumps({"task": args.task, "lr": lr, "seed": seed,
                                  "epochs": m.elapsed_epochs or float(m.epoch), "val_loss": m.val_loss,
                                  "val_acc": m.val_acc, "top": m.val_top_share, "spread": m.val_spread,
                                  "train_loss": m.train_loss, "train_loss_std": m.train_loss_std,
                                  "displacement": m.weight_change}), flush=True)


if __name__ == "__main__":
    main()
