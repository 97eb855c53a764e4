"""Latency of ``PolicyScheduler.step(metrics)``: what a controller adds to each validation.

Runs ``--runs`` fresh schedulers for ``--epochs`` steps each (a learned controller
re-encodes its whole history every step, so later steps cost a little more) and prints
the median and 90th percentile per step, with the machine.

    python benchmarks/scheduler_latency.py                     # ppo:default if shipped, else a policy file, else rule
    python benchmarks/scheduler_latency.py --controller rule
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lrpilot import PolicyScheduler

SHIPPED = Path(__file__).resolve().parent.parent / "lrpilot" / "checkpoints" / "default.json"


def random_policy(directory: str, hidden: int = 64) -> str:
    """A policy file in the real format with random weights (same cost as a trained one of that size)."""
    from lrpilot.controller.actions import ActionSpec
    from lrpilot.controller.features import ObservationEncoder
    from lrpilot.controller.policy import save_policy

    spec, g = ActionSpec(), torch.Generator().manual_seed(0)
    sizes = [ObservationEncoder().size, hidden, hidden, len(spec.multipliers)]
    layers = [(torch.randn(o, i, generator=g) * 0.1, torch.zeros(o)) for i, o in zip(sizes[:-1], sizes[1:])]
    card, _ = save_policy(Path(directory) / "random", layers=layers, activation="tanh", action=spec,
                          provenance={"benchmark": True})
    return str(card)


def default_controller(directory: str) -> tuple[str, str]:
    """(controller, description): the shipped policy, else a random policy file, else the rule."""
    if SHIPPED.exists():
        return "ppo:default", "shipped learned policy ppo:default"
    try:
        return random_policy(directory), "learned-policy file with random weights (64x64 tanh MLP; none shipped yet)"
    except ImportError:
        return "rule", "rule (no learned-policy support found)"


def measure(controller: str, epochs: int, runs: int) -> list[float]:
    """Seconds per ``step(metrics)`` call, over ``runs`` fresh schedulers of ``epochs`` steps."""
    times: list[float] = []
    for run in range(runs):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
        scheduler = PolicyScheduler(optimizer, controller, total_epochs=epochs)
        optimizer.step()
        loss = 2.0
        for epoch in range(epochs):
            loss *= 0.97 if (epoch + run) % 4 else 1.01
            metrics = {"train_loss": loss * 0.9, "val_loss": loss, "val_acc": 1 - loss / 3, "train_loss_std": 0.1}
            start = time.perf_counter()
            scheduler.step(metrics)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controller", default=None, help="spec or policy path (default: see module docstring)")
    parser.add_argument("--epochs", type=int, default=50, help="steps per scheduler (the seed's 50 epochs)")
    parser.add_argument("--runs", type=int, default=20, help="fresh schedulers")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        controller, what = (args.controller, args.controller) if args.controller else default_controller(tmp)
        measure(controller, 5, 1)  # warm-up
        times = measure(controller, args.epochs, args.runs)
    times_us = sorted(t * 1e6 for t in times)
    p90 = times_us[int(0.9 * (len(times_us) - 1))]
    print(f"controller: {what}")
    print(f"PolicyScheduler.step latency: median {statistics.median(times_us):.1f} us, p90 {p90:.1f} us, "
          f"max {times_us[-1]:.1f} us (n={len(times_us)} steps: {args.runs} runs x {args.epochs} epochs)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {args.threads}, "
          f"python {platform.python_version()}, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
