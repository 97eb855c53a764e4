"""Where the population environment's time goes: steps/s per synthetic family, architecture and interval.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/population_family_cost.py --json out.json

For each setting, a one-process population environment (64 members in 4 groups, encoder v2, terminal
budget end, no twin) over a :class:`~lrpilot.training.distribution.TaskDistribution` restricted to that
family (and architecture) is reset and stepped ``--steps`` times with the ×1.5 action; the rate is
decisions per second (64 per vector step, as SB3 counts timesteps). The last setting, the
three-family mix that PPO trains on, measures only the 4 tasks that its seed draws for its 4 groups
in those steps; over many redraws a uniform mix runs at the harmonic mean of its families' rates (a
derivation, not a measurement), so the slowest family decides it. Every number is one run on this
machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from lrpilot.learn.rollouts import population_venv, synthetic_distribution

SETTINGS = (("teacher", {}), ("gmm", {}), ("seq", {}), ("seq", {"archs": ("mlp",)}), ("seq", {"archs": ("cnn",)}),
            ("seq", {"archs": ("cnn",), "width_range": (8, 32)}), ("teacher,gmm,seq", {}))


def rate(families: str, overrides: dict, interval: float | None, steps: int) -> float:
    options = {"budget_end": "terminal", **({"interval": interval} if interval else {})}
    venv = population_venv(synthetic_distribution(tuple(families.split(",")), **overrides), "0.1,0.5,1,1.5,2", 64, 4,
                           1, 0, encoder_version=2, **options)
    try:
        venv.reset()
        start = time.perf_counter()
        for _ in range(steps):
            venv.step(np.full(64, 3))
        return steps * 64 / (time.perf_counter() - start)
    finally:
        venv.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24, help="vector steps per setting")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for families, overrides in SETTINGS:
        for interval in (None, 0.25):
            r = rate(families, overrides, interval, args.steps)
            label = families + "".join(f" {k}={list(v) if isinstance(v, tuple) else v}" for k, v in overrides.items())
            rows.append({"families": families, **{k: list(v) for k, v in overrides.items()},
                         "interval": interval or 1, "steps_per_s": round(r, 1)})
            print(f"{label:<45} interval {interval or 1:<5} {r:7.1f} steps/s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": f"{platform.machine()}, torch threads 1", "steps": args.steps, "rows": rows}, f,
                      indent=2)


if __name__ == "__main__":
    main()
