"""Wall time for N processes that all need the ``steep`` fine-tune's pretrained bodies at once, from an empty disk cache.

A population's workers start together and each draws fine-tunes over the :data:`FINETUNE_DATA_SEEDS` bodies; with
the cache's lock one process trains each body and the others wait and load it; ``--no-lock`` turns the lock off
(every process trains every body, as before session 34). One torch thread per process, as in the population.

    python benchmarks/body_lock.py --processes 8            # with the lock
    python benchmarks/body_lock.py --processes 8 --no-lock  # without
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import tempfile
import time


def _worker(no_lock: bool) -> None:
    import torch

    torch.set_num_threads(1)
    from lrpilot.training import finetune
    from lrpilot.training.distribution import FINETUNE_DATA_SEEDS, STEEP_DRAW
    from lrpilot.training.synthetic import pretrained_body

    if no_lock:
        finetune._one_trainer = lambda path: contextlib.nullcontext()  # noqa: SLF001
    for seed in range(FINETUNE_DATA_SEEDS):
        pretrained_body({**STEEP_DRAW, "data_seed": seed})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--no-lock", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LRPILOT_CACHE_DIR"] = cache
        began = time.perf_counter()
        procs = [mp.get_context("spawn").Process(target=_worker, args=(args.no_lock,)) for _ in range(args.processes)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        assert all(proc.exitcode == 0 for proc in procs)
        print(f"{args.processes} processes, lock {'off' if args.no_lock else 'on'}: "
              f"{time.perf_counter() - began:.1f} s wall")


if __name__ == "__main__":
    main()
