"""Session 27's benchmark helpers: ppo_heldout's paired comparison says which side the signed ranks favour, and
rename_scores carries one policy's runs over under another name (some seeds only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lrpilot.experiments.scoring import Score

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def ppo_heldout(benchmark_module):
    return benchmark_module("ppo_heldout")


def test_a_mean_gain_from_few_large_wins_is_reported_as_favouring_the_other(ppo_heldout) -> None:
    """One win of 50 points and nine losses of 1: the mean favours the policy, the signed ranks the other."""
    diffs = [0.50] + [-0.01 * (i + 1) for i in range(9)]
    scores = [Score("t", "adam", 1e-3, name, seed, acc) for seed, d in enumerate(diffs)
              for name, acc in (("policy:p", 0.5 + d / 2), ("other", 0.5 - d / 2))]
    result = ppo_heldout.paired(scores, "policy:p", "other")
    assert result["mean_diff_points"] > 0 and (result["wins"], result["losses"]) == (1, 9)
    assert result["signed_ranks_favour"] == "other"
    flipped = ppo_heldout.paired(scores, "other", "policy:p")
    assert flipped["signed_ranks_favour"] == "policy"


def test_rename_scores_renames_every_learned_run_and_keeps_the_seeds_asked_for(tmp_path: Path) -> None:
    rows = [{"task": "t", "optimizer": "adam", "lr": 1e-3, "controller": "policy:a", "seed": s, "test_acc": 0.5,
             "diverged": False, "lrfree": False, "undos": 0} for s in range(4)]
    rows.append({**rows[0], "controller": "constant+prodigy", "lrfree": True})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "evaluation.json").write_text(json.dumps({"scores": rows}))
    out = tmp_path / "out.json"
    subprocess.run([sys.executable, str(BENCHMARKS / "rename_scores.py"), str(tmp_path / "in"), "--controller",
                    "policy:b", "--seeds", "0,1", str(out)], check=True, capture_output=True)
    got = json.loads(out.read_text())["scores"]
    assert [(r["controller"], r["seed"]) for r in got] == [("policy:b", 0), ("policy:b", 1), ("constant+prodigy", 0)]


def test_the_epoch_raise_probe_acts_as_a_card_with_that_raise_power(monkeypatch, benchmark_module) -> None:
    """``epoch-raise:policy=default,power=P`` (the stage-1 probe) decides as ``policy:default`` with ``raise_power = P``."""
    from lrpilot.controller import from_spec, spec
    from lrpilot.metrics import EpochMetrics

    monkeypatch.setattr(spec, "_REGISTRY", dict(spec._REGISTRY))  # the probe's registration ends with the test
    benchmark_module("epoch_raise")

    losses = [0.69, 0.69, 0.68, 0.60, 0.55, 0.56, 0.50, 0.49]
    for power in (1.0, 0.5):
        for k in (1, 4):
            probe, plain = from_spec(f"epoch-raise:policy=default,power={power}"), from_spec("policy:default")
            for c in (probe, plain):
                c.reset(1e-4, 5, k)
            pairs = [(plain.act(m), probe.act(m)) for m in
                     (EpochMetrics(epoch=i + 1, lr=1e-4, train_loss=v, val_loss=v, val_acc=0.5) for i, v in enumerate(losses))]
            assert [q for _, q in pairs] == pytest.approx([p ** (k ** -power) if p > 1 else p for p, _ in pairs])
