"""Environment steps per second: one population env vs. single LRControlEnvs under SubprocVecEnv.

Both sides play the same episodes' kind: the same task, model width, epoch size, budget
and initial-LR range, random actions from a seeded generator, auto-resets included.
Each measurement runs in a fresh Python process (so neither side inherits the other's
threads or memory), after ``--settle`` seconds of rest (the baseline's worker processes
take seconds to release their memory: at n = 64, a population run started at once measured
about 12% slower), warms up, then times ``--steps`` vector steps; the table shows the
median (and range) over ``--repeats`` runs.

* baseline: ``SubprocVecEnv`` of ``n`` :class:`~lrpilot.envs.lr_control.LRControlEnv`,
  one torch thread per worker (the fastest setting for these tiny models; with the
  default two threads per worker the baseline is many times slower on 2 cores);
* population: one :class:`~lrpilot.envs.population.PopulationSB3VecEnv` of ``n`` members, for
  each ``--configs`` entry ``GxW``: ``G`` groups over ``W`` processes (default ``2x2``: two
  groups, one process per core, one torch thread each; and ``1x1``: one group in the
  benchmark's process, ``--pop-threads`` torch threads).

Mind the memory: every SubprocVecEnv worker ends up with a few hundred MB of its own, so
n = 128 does not fit a 24 GB machine (the kernel's OOM killer ends the run).

Usage:
    python benchmarks/population_speed.py                 # n = 16, 32, 64; 3 repeats
    python benchmarks/population_speed.py --quick         # CI smoke run: n = 4, 1 repeat, few steps
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Setup:
    """What both sides train (one measurement)."""

    side: str = "population"
    """``baseline`` or ``population``."""
    n: int = 16
    """Environments (members)."""
    task: str = "teacher-mlp"
    """Registered task."""
    width: int = 32
    """Model width (task option)."""
    epoch_examples: int = 512
    """Training examples per epoch."""
    epochs: int = 10
    """Episode budget."""
    steps: int = 30
    """Timed vector steps."""
    warmup: int = 3
    """Untimed vector steps before timing."""
    groups: int = 2
    """Population groups."""
    workers: int = 2
    """Population worker processes (one torch thread each); 1: in the benchmark's process."""
    pop_threads: int = 1
    """Torch threads of the population's main process (matters with ``workers=1``)."""
    seed: int = 0
    """Seed of the environments and of the random actions."""

    def env_kwargs(self) -> dict:
        """The EnvConfig fields both sides share."""
        return {"task": self.task, "initial_lr": (1e-4, 1e-1), "epochs": self.epochs,
                "epoch_examples": self.epoch_examples, "task_options": {"width": self.width}, "device": "cpu"}


def _make_single(kwargs: dict, rank: int):  # noqa: ANN202 - an env factory for SubprocVecEnv
    def make():  # noqa: ANN202
        import torch

        torch.set_num_threads(1)
        from lrpilot.envs.lr_control import LRControlEnv

        return LRControlEnv(**kwargs)

    return make


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes ``pids`` so far (Linux ``/proc``)."""
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(setup: Setup) -> dict[str, float]:
    """Steps (vector steps x n) per wall second and per CPU second of all its processes, for one side."""
    import numpy as np
    import torch

    if setup.side == "baseline":
        from stable_baselines3.common.vec_env import SubprocVecEnv

        # fork: workers share the parent's imported torch (forkserver/spawn workers would each load it,
        # ~300 MB apiece); safe here because nothing has started torch threads before the fork
        venv = SubprocVecEnv([_make_single(setup.env_kwargs(), i) for i in range(setup.n)], start_method="fork")
        pids = [p.pid for p in venv.processes]
    elif setup.side == "population":
        torch.set_num_threads(setup.pop_threads)
        from lrpilot.envs.population import PopulationSB3VecEnv

        venv = PopulationSB3VecEnv(num_envs=setup.n, groups=setup.groups, workers=setup.workers, **setup.env_kwargs())
        pids = list(getattr(venv.core, "pids", []))
    else:
        raise ValueError(f"side must be 'baseline' or 'population', got {setup.side!r}")
    pids.append(os.getpid())
    try:
        venv.seed(setup.seed)
        venv.reset()
        rng = np.random.default_rng(setup.seed)
        for _ in range(setup.warmup):
            venv.step(rng.integers(0, 4, setup.n))
        cpu, start = _cpu_seconds(pids), time.perf_counter()
        for _ in range(setup.steps):
            venv.step(rng.integers(0, 4, setup.n))
        elapsed, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu
    finally:
        venv.close()
    steps = setup.n * setup.steps
    return {"wall": steps / elapsed, "cpu": steps / max(cpu, 1e-9)}


def run_isolated(setup: Setup) -> dict[str, float]:
    """:func:`measure` in a fresh Python process."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(asdict(setup))]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"measurement {setup} failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and print the table (or, with ``--child``, one measurement as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[16, 32, 64], help="numbers of environments")
    parser.add_argument("--repeats", type=int, default=3, help="runs per (side, n)")
    parser.add_argument("--steps", type=int, default=30, help="timed vector steps per run")
    parser.add_argument("--task", default="teacher-mlp")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epoch-examples", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=10, help="episode budget")
    parser.add_argument("--configs", nargs="+", default=["2x2", "1x1"],
                        help="population settings to measure, GROUPSxWORKERS (2x2: two groups in two processes)")
    parser.add_argument("--pop-threads", type=int, default=1)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of rest before each measurement")
    parser.add_argument("--quick", action="store_true", help="CI smoke run: n=4, 1 repeat, 5 steps")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(Setup(**json.loads(args.child)))))
        return
    if args.quick:
        args.n, args.repeats, args.steps, args.settle = [4], 1, 5, 0.0
    configs = [_config(text) for text in args.configs]
    if min(args.n) < 1 or args.repeats < 1 or args.steps < 1 or args.settle < 0:
        raise ValueError(f"--n, --repeats and --steps must be >= 1 and --settle >= 0, "
                         f"got {args.n}, {args.repeats}, {args.steps}, {args.settle}")
    print(f"# {platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f} before; task {args.task} width {args.width}, "
          f"{args.epoch_examples} examples/epoch, budget {args.epochs}; {args.repeats} repeats x {args.steps} steps, "
          f"{args.settle:g} s rest before each; medians (min-max)")
    print(f"{'n':>4} | {'groups x workers':>16} | {'Subproc steps/s':>18} | {'population steps/s':>20} | "
          f"{'ratio':>6} | "
          f"{'Subproc steps/CPU-s':>19} | {'population':>18} | {'ratio':>6}")
    print("-" * 126)
    for n in args.n:
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], **{c: [] for c in args.configs}}
        for _ in range(args.repeats):  # interleaved, so that load changes hit every side alike
            for side, (groups, workers) in [("baseline", (1, 1)), *zip(args.configs, configs)]:
                setup = Setup(side="baseline" if side == "baseline" else "population", n=n, task=args.task,
                              width=args.width, epoch_examples=args.epoch_examples, epochs=args.epochs,
                              steps=args.steps, groups=min(groups, n), workers=min(workers, groups, n),
                              pop_threads=args.pop_threads)
                time.sleep(args.settle)
                runs[side].append(run_isolated(setup))
        for config in args.configs:
            cells = []
            for key in ("wall", "cpu"):
                base, pop = ([r[key] for r in runs[s]] for s in ("baseline", config))
                cells += [f"{statistics.median(v):7.1f} ({min(v):.0f}-{max(v):.0f})" for v in (base, pop)]
                cells.append(f"{statistics.median(pop) / statistics.median(base):5.1f}x")
            print(f"{n:>4} | {config:>16} | {cells[0]:>18} | {cells[1]:>20} | {cells[2]:>6} | {cells[3]:>19} | "
                  f"{cells[4]:>18} | {cells[5]:>6}", flush=True)


def _config(text: str) -> tuple[int, int]:
    """``"GxW"`` -> (groups, workers)."""
    try:
        groups, workers = (int(x) for x in text.split("x"))
    except ValueError:
        raise ValueError(f"a population config is GROUPSxWORKERS such as 2x2, got {text!r}") from None
    if not 1 <= workers <= groups:
        raise ValueError(f"need 1 <= workers <= groups, got {text!r}")
    return groups, workers


if __name__ == "__main__":
    main()
