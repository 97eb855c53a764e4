"""How much of the MiniLM miss at LR 1e-4 is the shipped policy's first raise? (issue #16, bar (c); a diagnosis)

Plays ``policy:default`` on ``minilm-sentiment`` per epoch from LR 1e-4 (5 epochs, as in the held-out grid)
as it is, and with its first decision replaced by x1 (every later decision is the policy's own, on the metrics
that run produced). Without the replacement the run is the held-out grid's run to the last digit. Prints one
JSON line per run: the LR, validation accuracy and decision of each epoch, and the final test accuracy.
Nothing is chosen from it: it says where the next training family must teach the policy something.

    PYTHONPATH=benchmarks HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/minilm_first_decision.py --seed 0 --hold
"""

from __future__ import annotations

import argparse
import json

import torch

import minilm_sentiment  # noqa: F401  registers the task
from lrpilot.controller import from_spec
from lrpilot.training import TrainingSession


def play(seed: int, hold: bool, lr: float = 1e-4, epochs: int = 5) -> dict:
    controller = from_spec("policy:default")
    controller.reset(lr, epochs, 1)
    session = TrainingSession("minilm-sentiment", seed=seed, device="cpu")
    session.scale_lr(lr / session.lr)
    trace = []
    for epoch in range(epochs):
        metrics = session.run_epoch()
        decision = controller.act(metrics)
        trace.append({"lr": metrics.lr, "val_acc": metrics.val_acc, "decision": decision})
        session.scale_lr(1.0 if hold and epoch == 0 else decision)
    return {"seed": seed, "first_decision_held": hold, "epochs": trace, "test_acc": session.evaluate("test")["acc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hold", action="store_true", help="replace the first decision by x1")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the grid's runs used 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(play(args.seed, args.hold)))


if __name__ == "__main__":
    main()
