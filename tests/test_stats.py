"""Statistics of `lrpilot compare`, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

from lrpilot.experiments.analysis import analyse
from lrpilot.experiments.run import RunConfig
from lrpilot.experiments.stats import (
    convergence_epoch, mean_ci, min_wilcoxon_p, paired_comparison, rank_values,
)
from lrpilot.experiments.store import RunRecord
from lrpilot.experiments.study import Study
from lrpilot.metrics import EpochMetrics


def test_mean_ci_matches_the_t_interval_by_hand():
    # mean 3, sd sqrt(2.5), sem sqrt(0.5), t(0.975, 4) = 2.776445
    est = mean_ci([1, 2, 3, 4, 5])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert est.n == 5 and est.mean == 3.0
    assert est.low == pytest.approx(3 - half, abs=1e-9) and est.high == pytest.approx(3 + half, abs=1e-9)
    # two values: t(0.975, 1) = 12.7062; sd = 0.1414; sem = 0.1
    two = mean_ci([0.9, 1.1])
    assert two.low == pytest.approx(1 - 1.2706204736, abs=1e-6)


def test_mean_ci_small_and_degenerate_samples():
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([]).mean)
    one = mean_ci([0.7])
    assert (one.mean, one.n) == (0.7, 1) and math.isnan(one.low) and math.isnan(one.high)
    same = mean_ci([0.5, 0.5, 0.5])
    assert (same.low, same.mean, same.high) == (0.5, 0.5, 0.5)
    skipped = mean_ci([1.0, None, math.nan, 3.0])
    assert (skipped.mean, skipped.n) == (2.0, 2)
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1, 2], confidence=95)


def test_paired_comparison_counts_and_wilcoxon_exact_p():
    test = paired_comparison([0.9, 0.8, 0.7, 0.6, 0.5], [0.8, 0.6, 0.4, 0.2, 0.0])
    assert (test.wins, test.ties, test.losses) == (5, 0, 0)
    assert test.difference.mean == pytest.approx(0.3)  # (0.1 + 0.2 + 0.3 + 0.4 + 0.5) / 5
    assert test.p_value == pytest.approx(0.0625)  # all 5 of one sign: 2 / 2^5, the smallest possible
    assert min_wilcoxon_p(5) == 0.0625
    # one loss of the smallest magnitude: W = 1 -> exact two-sided p = 2 * 2/32
    mixed = paired_comparison([0.1, 0.2, 0.3, 0.4, -0.05], [0, 0, 0, 0, 0])
    assert (mixed.wins, mixed.losses) == (4, 1) and mixed.p_value == pytest.approx(0.125)


def test_paired_comparison_degenerate_cases():
    none = paired_comparison([0.9], [0.8])
    assert none.p_value is None and none.difference.n == 1 and "1 pair" in none.note
    equal = paired_comparison([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert equal.p_value == 1.0 and equal.ties == 3 and equal.difference.mean == 0.0
    dropped = paired_comparison([0.9, math.nan, 0.7], [0.8, 0.5, None])
    assert dropped.difference.n == 1
    with pytest.raises(ValueError, match="equal lengths"):
        paired_comparison([1.0], [1.0, 2.0])


def _history(val_accs=None, val_losses=None, diverged_at=None):
    n = len(val_accs or val_losses)
    return [
        EpochMetrics(epoch=e + 1, lr=1e-3, train_loss=1.0 / (e + 1),
                     val_loss=(val_losses or [1.0] * n)[e] if diverged_at != e + 1 else math.nan,
                     val_acc=None if val_accs is None or diverged_at == e + 1 else val_accs[e],
                     diverged=diverged_at == e + 1)
        for e in range(n)
    ]


def test_convergence_epoch_by_accuracy_and_by_loss():
    # best 0.95 at epoch 4; 0.946 (epoch 3) is within 0.5 points, 0.94 (epoch 2) is not
    assert convergence_epoch(_history([0.5, 0.94, 0.946, 0.95, 0.93])) == 3
    assert convergence_epoch(_history([0.5, 0.94, 0.946, 0.95, 0.93]), acc_tol=0.02) == 2
    # no accuracy: best loss 1.0; 1.009 is within 1%, 1.02 is not
    assert convergence_epoch(_history(val_losses=[2.0, 1.02, 1.009, 1.0])) == 3
    assert convergence_epoch(_history([0.5, 0.9, 0.1], diverged_at=3)) == 2
    assert convergence_epoch([]) is None


def test_rank_values_ties_and_nan():
    assert rank_values({"a": 0.9, "b": 0.95, "c": 0.9}) == {"a": 2.5, "b": 1.0, "c": 2.5}
    assert rank_values({"a": math.nan, "b": 0.1}) == {"a": 2.0, "b": 1.0}


def _record(controller, lr, seed, acc, diverged=False):
    config = RunConfig(task="digits-mlp", controller=controller, seed=seed, lr=lr, epochs=2)
    history = _history([acc - 0.01, acc], diverged_at=2 if diverged else None)
    final = {"test_acc": None if diverged else acc, "test_loss": None if diverged else 1 - acc, "diverged": diverged,
             "diverged_epoch": 2 if diverged else None, "wall_time": 1.0, "epochs_run": 2, "final_lr": lr, "config": {}}
    return RunRecord(config, "done", history, final)


def test_analysis_regret_rank_and_paired_by_hand():
    study = Study(tasks=("digits-mlp",), controllers=("constant", "rule"), seeds=2, lrs=(1e-3, 1e-2), epochs=2)
    records = [
        _record("constant", 1e-3, 0, 0.90), _record("rule", 1e-3, 0, 0.92),
        _record("constant", 1e-2, 0, 0.95), _record("rule", 1e-2, 0, 0.0, diverged=True),
        _record("constant", 1e-3, 1, 0.80), _record("rule", 1e-3, 1, 0.85),
        _record("constant", 1e-2, 1, 0.70), _record("rule", 1e-2, 1, 0.75),
        RunRecord(RunConfig(task="digits-mlp", controller="rule", seed=2, lr=1e-3, epochs=2), "failed", error="x"),
    ]
    analysis = analyse(records, study)
    rows = {(r.setting[2], r.controller): r for r in analysis.summary}
    # best per seed over every controller and LR: seed 0 -> 0.95, seed 1 -> 0.85
    assert rows[(1e-3, "constant")].regret.mean == pytest.approx(0.05)
    assert rows[(1e-3, "rule")].regret.mean == pytest.approx((0.03 + 0.0) / 2)
    assert rows[(1e-2, "rule")].regret.mean == pytest.approx((0.95 + 0.10) / 2)  # diverged scores 0
    assert rows[(1e-2, "rule")].diverged == 1 and rows[(1e-2, "rule")].metrics["test_loss"].n == 1
    assert rows[(1e-2, "rule")].metrics["test_acc"].mean == pytest.approx(0.375)
    assert rows[(1e-3, "rule")].rank.mean == 1.0 and rows[(1e-2, "constant")].rank.mean == 1.5
    overall = {r.controller: r for r in analysis.overall}
    assert overall["rule"].rank.mean == pytest.approx(1.25) and overall["rule"].regret.n == 4
    paired = {(p.setting[2], p.controller, p.role): p for p in analysis.paired}
    vs_rule = paired[(1e-3, "constant", "reference")].test
    assert vs_rule.difference.mean == pytest.approx(-0.035) and (vs_rule.wins, vs_rule.losses) == (0, 2)
    assert vs_rule.p_value == pytest.approx(0.5)
    vs_best = paired[(1e-3, "rule", "best baseline")]
    assert vs_best.versus == "constant" and vs_best.test.difference.mean == pytest.approx(0.035)
    assert rows[(1e-3, "constant")].metrics["convergence_epoch"].mean == 2.0  # 0.89 -> 0.90: 1 point apart
