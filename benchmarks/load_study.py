"""Load: a study of many short runs on local workers; every result arrives once, worker memory stays flat.

    .venv/bin/python benchmarks/load_study.py                 # 200 runs of digits-mlp (1 epoch), 2 workers
    .venv/bin/python benchmarks/load_study.py --runs 400 --workers 2 --json load.json

Runs ``run_study`` (the engine of ``lrpilot compare``) on 4 controllers x runs/4 seeds,
counts the finished results in the store, and prints each worker's resident memory
(RSS, MiB) after its first, 10th and last run, with the growth from the 10th to the
last (the first runs pay one-off imports and allocator warm-up). The test
``tests/test_load.py`` runs the same study and asserts its promise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

CONTROLLERS = ("constant", "step", "plateau", "rule")


def load_study(runs: int, workers: int, root: Path, epochs: int = 1) -> dict:
    """Run the study; return the counts, the time and the per-worker memory series."""
    from lrpilot.experiments.run import read_metrics
    from lrpilot.experiments.runner import Execution, run_study
    from lrpilot.experiments.study import Study

    if runs % len(CONTROLLERS):
        raise ValueError(f"--runs must be a multiple of {len(CONTROLLERS)}, got {runs}")
    study = Study(tasks=("digits-mlp",), controllers=CONTROLLERS, seeds=runs // len(CONTROLLERS), epochs=epochs,
                  device="cpu")
    start = time.perf_counter()
    summary = run_study(study, root, Execution(workers=workers, progress=False))
    seconds = time.perf_counter() - start
    finals = [read_metrics(p) for p in sorted((root / "runs").glob("*/metrics.jsonl"))]
    series: dict[int, list[float]] = defaultdict(list)
    for pid, mib in summary.worker_memory:
        series[pid].append(mib)
    return {"runs": runs, "workers": workers, "seconds": seconds, "finished": summary.finished,
            "failed": len(summary.failed), "results": sum(1 for f in finals if f and f[1] is not None),
            "run_dirs": len(list((root / "runs").iterdir())), "rss_mib": {str(k): v for k, v in series.items()}}


def growth(series: list[float], warmup: int = 10) -> float:
    """RSS of the last run minus RSS after the ``warmup``-th run (MiB)."""
    return series[-1] - series[min(warmup, len(series)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        result = load_study(args.runs, args.workers, Path(tmp) / "study")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{result['runs']} runs, {result['workers']} workers: {result['results']} results, "
          f"{result['failed']} failed, {result['run_dirs']} run directories, {result['seconds']:.0f} s")
    print(f"{'worker':>8} {'runs':>5} {'RSS 1st':>9} {'RSS 10th':>9} {'RSS last':>9} {'growth 10th->last':>18}")
    for pid, series in result["rss_mib"].items():
        tenth = series[min(10, len(series)) - 1]
        print(f"{pid:>8} {len(series):>5} {series[0]:>9.1f} {tenth:>9.1f} {series[-1]:>9.1f} {growth(series):>18.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
