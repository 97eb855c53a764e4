"""Load: a study of 200 short runs on 2 workers ends with exactly 200 results; worker memory stays flat."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lrpilot.experiments.runner import Execution, run_study
from lrpilot.experiments.study import Study

SPEC = importlib.util.spec_from_file_location("load_study", Path(__file__).resolve().parents[1] / "benchmarks" / "load_study.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


@pytest.mark.slow
def test_200_runs_on_2_workers_give_200_results_and_flat_worker_memory(tmp_path, one_thread):
    root = tmp_path / "study"
    result = bench.load_study(200, 2, root)
    assert (result["results"], result["finished"], result["failed"], result["run_dirs"]) == (200, 200, 0, 200)
    series = result["rss_mib"]
    assert len(series) == 2 and sum(len(s) for s in series.values()) == 200  # both workers served, each run once
    for rss in series.values():
        assert len(rss) > 20
        assert bench.growth(rss) < 32, f"worker memory grew run after run: {rss[9]:.0f} -> {rss[-1]:.0f} MiB"
    again = run_study(Study(tasks=("digits-mlp",), controllers=bench.CONTROLLERS, seeds=50, epochs=1,
                                  device="cpu"), root, Execution(workers=2, progress=False))
    assert (again.total, again.already_done, again.finished) == (200, 200, 0)  # nothing lost, nothing redone
