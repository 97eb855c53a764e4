"""`lrpilot evaluate-controller`: regret / rank on a hand-made result set; a tiny end-to-end run;
the held-out tasks load and learn."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lrpilot.experiments.controller_eval import build_tables, render_markdown
from lrpilot.experiments.scoring import Score, regret_and_rank

ROOT = Path(__file__).resolve().parents[1]


def _scores() -> list[Score]:
    # task t, adam, two LRs, seeds 0 and 1; controllers a, b; one LR-free run per seed
    acc = {  # (lr, seed, controller) -> test acc
        (1e-3, 0, "a"): 0.90, (1e-3, 0, "b"): 0.80, (1e-2, 0, "a"): 0.70, (1e-2, 0, "b"): 0.70,
        (1e-3, 1, "a"): 0.60, (1e-3, 1, "b"): 0.95, (1e-2, 1, "a"): 0.50, (1e-2, 1, "b"): 0.00,
    }
    out = [Score("t", "adam", lr, c, seed, v, diverged=(v == 0.0)) for (lr, seed, c), v in acc.items()]
    out += [Score("t", "prodigy", None, "constant+prodigy", 0, 0.95, lrfree=True),
            Score("t", "prodigy", None, "constant+prodigy", 1, 0.85, lrfree=True)]
    return out


def test_regret_and_rank_match_hand_computed_values() -> None:
    scores = _scores()
    regret, rank = regret_and_rank(scores)
    # oracle: seed 0 -> 0.90, seed 1 -> 0.95 (the LR-free runs are not part of it)
    expected_regret = [0.0, 0.10, 0.20, 0.20, 0.35, 0.0, 0.45, 0.95, -0.05, 0.10]
    assert regret == pytest.approx(expected_regret)
    expected_rank = [1, 2, 1.5, 1.5, 2, 1, 1, 2]
    assert rank[:8] == pytest.approx(expected_rank)
    assert all(math.isnan(r) for r in rank[8:])
    tables = build_tables(scores, specs=["a"], reference="b")
    overall = {r["controller"]: r for r in tables["overall"]}
    assert overall["a"]["regret"]["mean"] == pytest.approx((0 + 0.2 + 0.35 + 0.45) / 4)
    assert overall["b"]["regret"]["mean"] == pytest.approx((0.1 + 0.2 + 0 + 0.95) / 4)
    assert overall["a"]["rank"]["mean"] == pytest.approx((1 + 1.5 + 2 + 1) / 4)
    assert overall["b"]["rank"]["mean"] == pytest.approx((2 + 1.5 + 1 + 2) / 4)
    assert overall["b"]["diverged"] == 1
    assert overall["constant+prodigy"]["regret"]["mean"] == pytest.approx(0.025)
    per_lr = {r["controller"]: r for r in tables["per_lr"]}
    assert per_lr["a"]["regret"][repr(1e-2)]["mean"] == pytest.approx((0.2 + 0.45) / 2)
    assert per_lr["a"]["vs_reference_points"][repr(1e-3)]["mean"] == pytest.approx((10 - 35) / 2)
    paired = tables["paired"][0]
    assert (paired["versus"], paired["wins"], paired["ties"], paired["losses"]) == ("b", 2, 1, 1)
    text = render_markdown(tables)
    assert "## Per initial LR: mean regret (points)" in text and "| a | 4 | 25.00" in text


def test_end_to_end_writes_tables(tmp_path: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = tmp_path / "ev"
    cmd = [sys.executable, "-m", "lrpilot", "evaluate-controller", "ppo:default", "--tasks", "wine-mlp",
           "--lrs", "1e-3,1e-2", "--optimizers", "adam", "--seeds", "1", "--epochs", "2", "--baselines", "constant",
           "--lrfree", "", "--workers", "1", "--out", str(out), "--no-progress"]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (out / "evaluation.md").read_text()
    for title in ("Overall: regret to the per-task oracle and rank", "Per initial LR: mean regret (points)",
                  "Paired comparisons"):
        assert title in text
    assert "ppo:default" in text and "| constant |" in text
    assert (out / "evaluation.json").exists()
    printed = result.stdout.splitlines()  # a pipe: rich prints 80 columns, and no table row may wrap
    assert all(len(line) <= 80 for line in printed), result.stdout
    assert any(line.startswith("ppo:default ") for line in printed)  # a whole name heads its row
    # a second invocation resumes: nothing is rerun, the tables are the same
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and (out / "evaluation.md").read_text() == text
    # the per-run scores in evaluation.json rebuild the same tables once the run folders are gone
    from lrpilot.experiments.controller_eval import collect_scores, scores_from_evaluation

    kept = scores_from_evaluation(out)
    from_runs = [s for d in (out / "runs").iterdir() if (d / "study.json").exists()
                 for s in collect_scores(d, lrfree=d.name == "lrfree")]
    assert sorted(kept, key=repr) == sorted(from_runs, key=repr)
    assert {s.controller for s in kept} == {"ppo:default", "constant"} and len(kept) == 4
    shutil.rmtree(out / "runs")
    assert render_markdown(build_tables(scores_from_evaluation(out / "evaluation.json"), specs=["ppo:default"])) \
        == render_markdown(build_tables(kept, specs=["ppo:default"]))


@pytest.mark.parametrize("name", ["breast-cancer-mlp", "wine-mlp", "iris-mlp"])
def test_heldout_and_validation_tasks_load_and_learn(name: str) -> None:
    import torch

    from lrpilot.training import get_task
    from lrpilot.training.session import TrainingSession

    torch.set_num_threads(1)
    task = get_task(name).with_overrides(lr=1e-3, epochs=4)
    session = TrainingSession(task, seed=0, device="cpu")
    first = session.run_epoch()
    for _ in range(3):
        last = session.run_epoch()
    classes = {"breast-cancer-mlp": 2, "wine-mlp": 3, "iris-mlp": 3}[name]
    assert last.train_loss < first.train_loss
    assert last.val_acc > 1.5 / classes
    assert session.evaluate("test")["acc"] > 1.5 / classes


def test_validation_tasks_use_no_data_of_the_heldout_grid_nor_of_the_training_distribution() -> None:
    from lrpilot.commands.evaluate_controller import HELDOUT_TASKS as GRID
    from lrpilot.training.heldout import HELDOUT_TASKS, VALIDATION_TASKS
    from lrpilot.training.distribution import TaskDistribution

    names = {task.name for task in VALIDATION_TASKS}
    assert names == {"iris-mlp"} and not names & set(GRID)
    assert {t.options["dataset"] for t in VALIDATION_TASKS}.isdisjoint(t.options["dataset"] for t in HELDOUT_TASKS)
    assert set(TaskDistribution().families) == {"teacher", "gmm", "seq"}  # no digits (digits-mlp/-cnn's data)


def test_scores_from_an_old_or_missing_evaluation_say_why(tmp_path: Path) -> None:
    from lrpilot.experiments.controller_eval import scores_from_evaluation

    with pytest.raises(FileNotFoundError, match="no evaluation at"):
        scores_from_evaluation(tmp_path)
    (tmp_path / "evaluation.json").write_text('{"overall": []}')
    with pytest.raises(ValueError, match="keeps no per-run scores"):
        scores_from_evaluation(tmp_path)
