"""Where a population step's time goes with a twin: cProfile of the population environment alone (no PPO).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/population_profile.py [--families teacher,gmm] [--steps 40]

One process (the 4 groups stepped in turn), 64 members, the long recipe's settings (configs/ppo-residual-1m.toml:
budgets 4-50, intervals 1 and 0.25, widths 8-32, encoder v2, twin ``bold-anneal-streakup``, terminal budget
end, drain redraws), the x1 action; 5 vector steps of warm-up, then ``--steps`` profiled. Prints the rate
(decisions per second) and the functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
import torch

from lrpilot.learn.rollouts import population_venv, synthetic_distribution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="teacher,gmm")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist = synthetic_distribution(tuple(args.families.split(",")), epochs_range=(4, 50), intervals=(1.0, 0.25),
                                  width_range=(8, 32))
    venv = population_venv(dist, "0.1,0.5,1,1.5,2", 64, 4, 1, 0, encoder_version=2, twin="bold-anneal-streakup",
                           budget_end="terminal", redraw="drain")
    try:
        venv.reset()
        for _ in range(5):
            venv.step(np.full(64, 2))
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.enable()
        for _ in range(args.steps):
            venv.step(np.full(64, 2))
        profile.disable()
        print(f"{args.steps * 64 / (time.perf_counter() - start):.1f} steps/s (under the profiler)")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    finally:
        venv.close()


if __name__ == "__main__":
    main()
