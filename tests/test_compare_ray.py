"""`lrpilot compare --ray`: the same runs as Ray tasks on a local Ray instance, the same store."""

from __future__ import annotations

import importlib.util

import pytest

from lrpilot.experiments.run import read_metrics
from lrpilot.experiments.runner import Execution, run_study
from lrpilot.experiments.study import Study

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason="ray is not installed (pip install 'lrpilot[ray]')"),
]


def test_two_run_study_on_a_local_ray_instance(tmp_path):
    study = Study(tasks=("digits-mlp",), controllers=("constant", "rule"), seeds=1, epochs=2)
    summary = run_study(study, tmp_path, Execution(ray="local", workers=2, progress=False))
    assert (summary.finished, summary.failed) == (2, ())
    for config in study.run_configs():
        history, final = read_metrics(tmp_path / "runs" / config.name / "metrics.jsonl")
        assert len(history) == 2 and final["epochs_run"] == 2 and final["config"] == config.to_dict()
    again = run_study(study, tmp_path, Execution(ray="local", workers=2, progress=False))
    assert (again.already_done, again.finished) == (2, 0)  # resumes like the local backend
