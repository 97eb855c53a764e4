"""What `lrpilot compare` costs beyond training: one study of N runs vs N plain `lrpilot train` runs.

    .venv/bin/python benchmarks/runner_overhead.py            # 6 runs of digits-mlp, 5 epochs, 3 repeats

Three timings per repeat, each of the same N runs (2 controllers x N/2 seeds):

* ``compare``: ``lrpilot compare --workers 1 --no-report`` (one worker process: the runner's
  own cost, not parallelism);
* ``train x N``: N ``lrpilot train --out`` commands one after another (each pays Python,
  torch and data start-up once);
* ``in-process``: ``run_training`` N times in this process (pure training + checkpoints).

Prints wall and CPU seconds (CPU: this process and its children, user + system: the
figure that a busy shared machine disturbs least), their medians and the ratio
compare / (train x N); ``lrpilot report`` is timed apart.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONTROLLERS = ("constant", "rule")


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class _Clock:
    """Wall and CPU seconds (this process and its finished children) of a block."""

    def __enter__(self) -> "_Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time() + _cpu_children()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() + _cpu_children() - self.cpu


def _lrpilot(*args: str) -> list[str]:
    return [sys.executable, "-m", "lrpilot", *args]


def one_repeat(task: str, seeds: int, epochs: int, work: Path) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of the three timings (and the report) of one repeat, in fresh directories."""
    common = ["--task", task, "--epochs", str(epochs)]
    compare_cmd = _lrpilot("compare", *common, *[a for c in CONTROLLERS for a in ("--controller", c)],
                           "--seeds", str(seeds), "--workers", "1", "--no-report", "--no-progress",
                           "--out", str(work / "study"))
    times: dict[str, tuple[float, float]] = {}
    with _Clock() as clock:
        _run(compare_cmd)
    times["compare"] = (clock.wall, clock.cpu)
    with _Clock() as clock:
        _run(_lrpilot("report", str(work / "study")))
    times["report"] = (clock.wall, clock.cpu)
    with _Clock() as clock:
        for seed in range(seeds):
            for controller in CONTROLLERS:
                _run(_lrpilot("train", *common, "--controller", controller, "--seed", str(seed),
                                "--out", str(work / f"train-{controller}-{seed}")))
    times["train x N"] = (clock.wall, clock.cpu)
    times["in-process"] = _in_process(task, seeds, epochs, work / "inproc")
    return times


def _in_process(task: str, seeds: int, epochs: int, work: Path) -> tuple[float, float]:
    from lrpilot.experiments.run import RunConfig, run_training

    run_training(RunConfig(task=task, epochs=1), work / "warm-up")  # imports and data loading, not timed
    with _Clock() as clock:
        for seed in range(seeds):
            for controller in CONTROLLERS:
                run_training(RunConfig(task=task, controller=controller, seed=seed, epochs=epochs), work / f"{controller}-{seed}")
    return clock.wall, clock.cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits-mlp")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per controller (N = 2 x seeds runs)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    n = len(CONTROLLERS) * args.seeds
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print(f"{n} runs of {args.task}, {args.epochs} epochs each; {args.repeats} repeats")
    results: dict[str, list[tuple[float, float]]] = {}
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            for key, value in one_repeat(args.task, args.seeds, args.epochs, Path(tmp)).items():
                results.setdefault(key, []).append(value)
        print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1][0]:.1f} s wall / {v[-1][1]:.1f} s CPU" for k, v in results.items()))
    for i, kind in enumerate(("wall", "CPU")):
        median = {k: statistics.median(x[i] for x in v) for k, v in results.items()}
        print(f"median {kind} over {args.repeats}: " + ", ".join(f"{k} {v:.1f} s" for k, v in median.items()))
        print(f"  {kind}: compare / (train x {n}) = {median['compare'] / median['train x N']:.2f}; compare - in-process = "
              f"{median['compare'] - median['in-process']:.1f} s ({(median['compare'] - median['in-process']) / n:.2f} s per run)")

if __name__ == "__main__":
    main()
