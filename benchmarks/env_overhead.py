"""Overhead of LRControlEnv over a plain TrainingSession loop, in seconds per epoch.

Both sides train the same task, seed and initial LR for ``--epochs`` epochs (session
construction included, as in an episode): the plain loop calls ``run_epoch()`` and
``scale_lr(1.0)``; the env side calls ``reset()`` then ``step(keep)`` until the budget
is used (observation encoding, reward, info and divergence checks included). The two
alternate ``--repeats`` times in one process with one torch thread, so drift in a
shared machine's load hits both alike; the table gives medians and the median of the
per-repeat ratios, in wall time and in CPU time of the process (``time.process_time``,
far less disturbed by other processes on a busy machine). It also times
``ObservationEncoder.encode`` alone.

Usage:
    python benchmarks/env_overhead.py                       # digits-cnn, 20 epochs, 5 repeats
    python benchmarks/env_overhead.py --task digits-mlp --epochs 30 --repeats 9
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def plain(task: str, epochs: int, seed: int, lr: float) -> tuple[float, float]:
    """(wall, CPU) seconds per epoch of the bare loop."""
    from lrpilot.training import TrainingSession, get_task

    start, cpu = time.perf_counter(), time.process_time()
    session = TrainingSession(get_task(task).with_overrides(lr=lr, epochs=epochs), seed=seed, device="cpu",
                              min_lr=lr * 1e-4, max_lr=lr * 100)
    for i in range(epochs):
        session.run_epoch()
        if i < epochs - 1:
            session.scale_lr(1.0)
    return (time.perf_counter() - start) / epochs, (time.process_time() - cpu) / epochs


def through_env(task: str, epochs: int, seed: int, lr: float) -> tuple[float, float]:
    """(wall, CPU) seconds per epoch through LRControlEnv (reset + steps)."""
    from lrpilot.envs.lr_control import LRControlEnv

    env = LRControlEnv(task=task, initial_lr=lr, epochs=epochs, device="cpu")
    keep = env.action_spec.multipliers.index(1.0)
    start, cpu = time.perf_counter(), time.process_time()
    env.reset(seed=0, options={"session_seed": seed})
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(keep)
        done = terminated or truncated
    return (time.perf_counter() - start) / epochs, (time.process_time() - cpu) / epochs


def encoder_us(epochs: int) -> float:
    """Microseconds per ``encode`` of an ``epochs``-long history."""
    from lrpilot.controller.features import ObservationEncoder
    from lrpilot.metrics import EpochMetrics

    enc = ObservationEncoder()
    hist = [EpochMetrics(epoch=i + 1, lr=1e-3, train_loss=1.0 / (i + 1), train_loss_std=0.1, val_loss=1.1 / (i + 1),
                         val_acc=0.5) for i in range(epochs)]
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        enc.encode(hist, 1e-3, epochs)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits-cnn")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    plain(args.task, 2, 0, args.lr)  # warm-up: imports, data loading
    through_env(args.task, 2, 0, args.lr)
    rows = []
    for r in range(args.repeats):
        a, b = plain(args.task, args.epochs, r, args.lr), through_env(args.task, args.epochs, r, args.lr)
        rows.append((a, b))
        print(f"repeat {r}: wall plain {a[0]:.4f} env {b[0]:.4f} s/epoch (ratio {b[0] / a[0]:.3f}); "
              f"CPU plain {a[1]:.4f} env {b[1]:.4f} s/epoch (ratio {b[1] / a[1]:.3f})")
    print(f"\n{args.task}, {args.epochs} epochs, n={args.repeats} repeats, 1 torch thread, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for k, clock in enumerate(("wall", "CPU")):
        ratios = [b[k] / a[k] for a, b in rows]
        print(f"{clock:>4}: plain median {statistics.median(a[k] for a, _ in rows):.4f} s/epoch, env.step median "
              f"{statistics.median(b[k] for _, b in rows):.4f} s/epoch, ratio median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"encoder    : {encoder_us(args.epochs):.1f} us per encode of a {args.epochs}-epoch history")


if __name__ == "__main__":
    main()
