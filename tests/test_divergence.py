"""Divergence: the one rule (`DivergenceRule`), and divergence as data, not a crash: huge learning rates,
NaN inputs and a bf16 overflow end a run as "diverged at epoch k", every controller sees it, and no NaN
reaches a learning rate or a results table."""

from __future__ import annotations

import csv
import json
import math
import textwrap

import pytest
from fixtures import saved_and_loaded

from lrpilot.cli import main
from lrpilot.experiments.run import read_metrics
from lrpilot.experiments.runner import Execution, run_study
from lrpilot.experiments.study import Study
from lrpilot.training import DivergenceRule, TrainingSession, get_task
from lrpilot.training.population_trainer import Population

CHANCE_10 = 10 * math.log(10)  # the default chance limit of a 10-class task


# -- the rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("rule, val_loss, first, expected", [
    (DivergenceRule(), 2.0, None, False),
    (DivergenceRule(), CHANCE_10, None, False),  # the limit itself is not above it
    (DivergenceRule(), math.nextafter(CHANCE_10, math.inf), None, True),
    (DivergenceRule(), 1e6, 1.0, True),
    (DivergenceRule(), 20.0, 1.0, False),  # growth is off by default, however far above the first
    (DivergenceRule(chance_factor=2.0), 2 * math.log(10) + 1e-9, None, True),
    (DivergenceRule(growth_factor=3.0), 6.0, 2.0, False),  # 3 x the first is not above it
    (DivergenceRule(growth_factor=3.0), math.nextafter(6.0, math.inf), 2.0, True),
    (DivergenceRule(growth_factor=3.0), 6.5, None, False),  # the first epoch itself: no growth
    (DivergenceRule(growth_factor=3.0), 6.5, math.nan, False),  # a non-finite first never triggers it
    (DivergenceRule(growth_factor=3.0), 30.0, 20.0, True),  # below growth, above chance: chance still applies
])
def test_rule_thresholds_and_their_boundaries(rule, val_loss, first, expected) -> None:
    assert rule.diverged(val_loss, 10, first_val_loss=first) is expected


@pytest.mark.parametrize("val_loss, finite", [(math.nan, True), (math.inf, True), (-math.inf, True), (1.0, False)])
def test_non_finite_losses_or_weights_always_diverge(val_loss, finite) -> None:
    for rule in (DivergenceRule(), DivergenceRule(chance_factor=1e9, growth_factor=1e9)):
        assert rule.diverged(val_loss, 10, finite=finite, first_val_loss=1.0)


def test_chance_level_uses_at_least_two_classes() -> None:
    assert DivergenceRule().chance_limit(1) == DivergenceRule().chance_limit(2) == 10 * math.log(2)
    assert DivergenceRule(chance_factor=3).chance_limit(100) == 3 * math.log(100)


@pytest.mark.parametrize("field, value", [
    ("chance_factor", 1.0), ("chance_factor", 0.5), ("chance_factor", math.nan), ("chance_factor", math.inf),
    ("chance_factor", True), ("chance_factor", "10"), ("chance_factor", None), ("chance_factor", 10**400),
    ("growth_factor", 1.0), ("growth_factor", -2.0), ("growth_factor", math.inf), ("growth_factor", "2"),
])
def test_bad_factors_name_the_field_and_value(field, value) -> None:
    with pytest.raises(ValueError, match=f"DivergenceRule: {field} must be a finite number > 1"):
        DivergenceRule(**{field: value})


def test_old_divergence_factor_keyword_is_the_chance_factor_with_a_warning() -> None:
    task = get_task("teacher-mlp").with_overrides(width=16)
    with pytest.warns(DeprecationWarning, match="divergence_factor"):
        session = TrainingSession(task, device="cpu", divergence_factor=3.0)
    assert session.divergence == DivergenceRule(chance_factor=3.0)
    with pytest.warns(DeprecationWarning, match="divergence_factor"):
        assert Population(task, [0], divergence_factor=3.0).divergence == DivergenceRule(chance_factor=3.0)
    with pytest.raises(ValueError, match="not both"):
        TrainingSession(task, device="cpu", divergence=DivergenceRule(), divergence_factor=3.0)
    with pytest.raises(TypeError, match="DivergenceRule"):
        TrainingSession(task, device="cpu", divergence=10.0)
    with pytest.raises(ValueError, match="chance_factor"):
        Population(task, [0], divergence_factor=1.0)
    assert TrainingSession(task, device="cpu").divergence == DivergenceRule()  # growth off for sessions


def test_growth_is_measured_from_the_first_epoch_across_a_resume(one_thread) -> None:
    """The first validation loss comes from the saved history: a resumed session flags the same epochs."""
    rule = DivergenceRule(growth_factor=1.5)
    task = get_task("teacher-mlp").with_overrides(optimizer="sgd", weight_decay=0.01, width=16, lr=10.0)
    whole = TrainingSession(task, seed=2, device="cpu", epoch_examples=128, divergence=rule)
    flags = [whole.run_epoch().diverged for _ in range(4)]
    assert flags == [False, False, True, True]  # val loss x1.45, x8.1, x2.7 of the first, all below chance
    assert all(m.val_loss < CHANCE_10 for m in whole.history)
    first = TrainingSession(task, seed=2, device="cpu", epoch_examples=128, divergence=rule)
    first.run_epoch()
    resumed = TrainingSession(task, seed=2, device="cpu", epoch_examples=128, divergence=rule)
    resumed.load_state_dict(saved_and_loaded(first.state_dict()))
    assert [resumed.run_epoch().diverged for _ in range(3)] == flags[1:]


# -- divergence as data ------------------------------------------------------------------

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
