"""Are a run's numbers the same with another torch thread count? (docs/compare.md, "Threads")

Plays the first two quarter epochs of ``minilm-sentiment`` (LR 1e-4, seed 0, validation subset 128, the LR
doubled after the first quarter, as ``policy:default`` does there) once per thread count, and prints each
interval's training and validation loss to the last digit.

    PYTHONPATH=benchmarks HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/thread_numerics.py --threads 1,2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp


def play(threads: int) -> list[tuple[float, float]]:
    import torch

    import minilm_sentiment  # noqa: F401  registers the task
    from lrpilot.training import TrainingSession

    torch.set_num_threads(threads)
    session = TrainingSession("minilm-sentiment", seed=0, device="cpu", interval="0.25", val_subset=128)
    out = []
    for factor in (2.0, 1.0):
        metrics = session.run_interval()
        out.append((metrics.train_loss, metrics.val_loss))
        session.scale_lr(factor)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    context = mp.get_context("spawn")  # a fresh process per count: torch keeps a thread pool once started
    for threads in (int(t) for t in args.threads.split(",")):
        with context.Pool(1) as pool:
            for interval, (train, val) in enumerate(pool.apply(play, (threads,)), 1):
                print(f"threads {threads}, interval {interval}: train_loss {train!r}, val_loss {val!r}")


if __name__ == "__main__":
    main()
