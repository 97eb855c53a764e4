"""The evidence ``+guard`` judges a collapse by, measured on the MiniLM fine-tune at several LRs.

    PYTHONPATH=benchmarks OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/collapse_evidence.py \\
        --lrs 1e-5,1e-4,1e-3,1e-2 --intervals 4

For each LR, a ``minilm-sentiment`` session (Adam, seed 0, interval 0.25, no controller) is validated
before training and after each of the first ``--intervals`` quarter epochs; one JSON line per
measurement: validation loss and accuracy, the share of predictions in the most predicted class
(``top``) and the spread of the outputs over inputs (``spread``; docs/controller.md, "The guard").
"""

from __future__ import annotations

import argparse
import json

import minilm_sentiment  # noqa: F401 - registers the task

from lrpilot.training import TrainingSession, get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", default="1e-5,1e-4,1e-3,1e-2")
    parser.add_argument("--intervals", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for lr in (float(x) for x in args.lrs.split(",")):
        session = TrainingSession(get_task("minilm-sentiment").with_overrides(lr=lr), seed=args.seed, interval=0.25,
                                  device="cpu")
        start = session.evaluate("val")
        print(json.dumps({"lr": lr, "epochs": 0.0, "val_loss": start["loss"], "val_acc": start["acc"],
                          "top": start["top_share"], "spread": start["spread"], "chance_loss": start["chance_loss"],
                          "majority": start["majority_share"]}), flush=True)
        for _ in range(args.intervals):
            m = session.run_interval()
            print(json.dumps({"lr": lr, "epochs": m.elapsed_epochs, "val_loss": m.val_loss, "val_acc": m.val_acc,
                              "top": m.val_top_share, "spread": m.val_spread, "train_loss": m.train_loss}), flush=True)


if __name__ == "__main__":
    main()
