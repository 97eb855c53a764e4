"""End-to-end PPO throughput on the population environment, with and without reference twins (issue #16).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ppo_twin_throughput.py --timesteps 32768 --json out.json

For each setting (no twin; ``--twin``, default ``bold``) it measures, over the synthetic training
distribution (the families of ``configs/clone-policy.toml``, with ``--budget-end terminal``):

* the environment alone: ``--env-steps`` vector steps of random actions (steps/s, one step = one
  decision of one member, as SB3 counts timesteps);
* PPO end to end: SB3 PPO from scratch (rollouts and updates, the shipped recipe's PPO settings) for
  ``--timesteps`` steps (steps/s);
* the peak resident memory of this process and of its worker processes (``ru_maxrss``).

Every number is one run on this machine; the machine and the torch thread count are printed.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
import torch

from lrpilot.learn.pipeline import ppo_finetune
from lrpilot.learn.rollouts import population_venv, synthetic_distribution

ACTIONS = "0.1,0.5,1,1.5,2"


def _peak_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self_mb": round(own, 1), "largest_worker_mb": round(children, 1)}


def env_rate(options: dict, args: argparse.Namespace) -> float:
    venv = population_venv(synthetic_distribution(), ACTIONS, args.num_envs, args.groups, args.workers, 0, **options)
    try:
        venv.reset()
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(args.env_steps):
            venv.step(rng.integers(0, 5, size=args.num_envs))
        return args.env_steps * args.num_envs / (time.perf_counter() - start)
    finally:
        venv.close()


def ppo_rate(options: dict, args: argparse.Namespace) -> float:
    start = time.perf_counter()
    ppo_finetune(None, distribution=synthetic_distribution(), actions=ACTIONS, timesteps=args.timesteps,
                 num_envs=args.num_envs, groups=args.groups, workers=args.workers, seed=0, gamma=args.gamma,
                 encoder_version=2, **options)
    return args.timesteps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=32768)
    parser.add_argument("--env-steps", type=int, default=64)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--twin", default="bold")
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch threads 1",
               "timesteps": args.timesteps, "env_steps": args.env_steps, "num_envs": args.num_envs,
               "groups": args.groups, "workers": args.workers, "gamma": args.gamma}
    for name, options in (("no twin", {"budget_end": "terminal"}),
                          (f"twin {args.twin}", {"budget_end": "terminal", "twin": args.twin})):
        row = {"env_steps_per_s": round(env_rate(options, args), 1), "ppo_steps_per_s": round(ppo_rate(options, args), 1)}
        row.update(_peak_mb())
        results[name] = row
        print(f"{name}: environment alone {row['env_steps_per_s']:.0f} steps/s; PPO end to end "
              f"{row['ppo_steps_per_s']:.0f} steps/s; peak memory {row['self_mb']:.0f} MB here, "
              f"{row['largest_worker_mb']:.0f} MB in the largest worker so far")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
