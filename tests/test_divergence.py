"""Divergence is data, not a crash: huge learning rates, NaN inputs and a bf16 overflow end a run as
"diverged at epoch k", every controller sees it, and no NaN reaches a learning rate or a results table."""

from __future__ import annotations

import csv
import json
import math
import textwrap

import pytest

from lrpilot.cli import main
from lrpilot.experiments.run import read_metrics
from lrpilot.experiments.runner import Execution, run_study
from lrpilot.experiments.study import Study

PLUGIN = textwrap.dedent('''
    """Test plugin: faults that start in the second epoch (digits has 18 batches of 64 per epoch)."""
    import dataclasses
    import torch
    from torch import nn
    from lrpilot.training import register_task
    from lrpilot.training.digits import DIGITS_MLP, digits_mlp

    class Fault(nn.Module):
        def __init__(self, inner, kind, from_batch=25):
            super().__init__()
            self.inner, self.kind, self.from_batch, self.calls = inner, kind, from_batch, 0

        def forward(self, x):
            self.calls += self.training
            if self.training and self.calls >= self.from_batch:
                if self.kind == "nan-input":
                    x = x.clone()
                    x[0, 3] = float("nan")
                else:  # activations far beyond bf16's range (about 3.4e38) overflow to inf
                    return (self.inner(x).to(torch.bfloat16) * torch.tensor(1e38, dtype=torch.bfloat16) * 100).float()
            return self.inner(x)

    for kind in ("nan-input", "bf16-overflow"):
        register_task(dataclasses.replace(DIGITS_MLP, name=f"test-{kind}",
                                          build_model=lambda task, data, kind=kind: Fault(digits_mlp(task, data), kind)),
                      overwrite=True)
''')
CONTROLLERS = ("constant", "step", "plateau", "cosine", "rule", "bold", "ppo:default")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "lrpilot_test_faults.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit sys.path


def strict_json(line):
    def refuse(token):
        raise AssertionError(f"{token} in a results file")
    return json.loads(line, parse_constant=refuse)


def check_store(root, expected_epoch=None):
    """Every run diverged, at the epoch its history shows, with a finite LR; tables hold no NaN."""
    runs = sorted((root / "runs").iterdir())
    assert runs and not list(root.glob("runs/*/failed.json"))
    for run in runs:
        for line in (run / "metrics.jsonl").read_text().splitlines():
            strict_json(line)
        history, final = read_metrics(run / "metrics.jsonl")
        first = next(m.epoch for m in history if m.diverged)
        assert final["diverged"] and final["diverged_epoch"] == first == len(history), run.name
        if expected_epoch is not None:
            assert first == expected_epoch, run.name
        assert final["test_acc"] is None and math.isfinite(final["final_lr"]) and final["final_lr"] > 0
        assert all(math.isfinite(m.lr) and m.lr > 0 for m in history)
    assert main(["report", str(root)]) == 0
    text = (root / "summary.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert rows and all(int(r["diverged"]) == int(r["runs"]) for r in rows)
    assert not {"nan", "inf", "-inf"} & {v.strip().lower() for r in rows for v in r.values()}


@pytest.mark.slow
def test_huge_learning_rates_diverge_as_results_for_every_controller(tmp_path, one_thread):
    study = Study(tasks=("digits-mlp",), controllers=CONTROLLERS, lrs=(10.0, 1e3), seeds=1, epochs=4, device="cpu")
    summary = run_study(study, tmp_path / "lr", Execution(workers=2, progress=False))
    assert summary.finished == 14 and not summary.failed
    check_store(tmp_path / "lr")


@pytest.mark.slow
def test_nan_inputs_and_bf16_overflow_diverge_at_the_epoch_they_happen(tmp_path, plugin, one_thread):
    study = Study(tasks=("test-nan-input", "test-bf16-overflow"), controllers=CONTROLLERS, seeds=1, epochs=4,
                  device="cpu", imports=("lrpilot_test_faults",))
    summary = run_study(study, tmp_path / "faults", Execution(workers=2, progress=False))
    assert summary.finished == 14 and not summary.failed
    check_store(tmp_path / "faults", expected_epoch=2)
