"""Runs with a controller that may undo: a diverged epoch asks it first, an undo rewinds the run and it goes
on; controllers that cannot undo end at divergence as before; the deployed forms refuse undo in one line."""

from __future__ import annotations

import json
import math

import pytest

from lrpilot.controller import Controller, register_controller
from lrpilot.controller.base import UNDO
from lrpilot.experiments.run import RunConfig, run_training
from lrpilot.metrics import EpochMetrics


class UndoOnDivergence(Controller):
    """Test controller (a stand-in for a guard): undo an epoch that diverged or left the validation loss
    at chance level (10 classes: log 10 = 2.30; 2.0 and above counts); otherwise keep the LR."""

    name = "undo-on-divergence"
    may_undo = True
    _state_keys = ("best",)

    def _reset(self) -> None:
        self.best = math.inf

    def _act(self, metrics: EpochMetrics):  # noqa: ANN202
        if metrics.diverged or not metrics.val_loss < 2.0:
            return UNDO
        self.best = min(self.best, metrics.val_loss)
        return 1.0


class SaysUndoWithoutDeclaring(UndoOnDivergence):
    name = "undo-undeclared"
    may_undo = False


register_controller(UndoOnDivergence.name, UndoOnDivergence)
register_controller(SaysUndoWithoutDeclaring.name, SaysUndoWithoutDeclaring)

RUN = dict(task="digits-mlp", seed=0, epochs=8, lr=30.0, device="cpu", task_options={"width": 16})


def test_a_diverging_run_is_undone_and_recovers_where_a_plain_controller_ends_diverged(tmp_path) -> None:
    plain = run_training(RunConfig(controller="constant", **RUN))
    assert plain.final["diverged"] and plain.final["epochs_run"] < 8 and "undos" not in plain.final
    result = run_training(RunConfig(controller="undo-on-divergence", **RUN), tmp_path / "run")
    history, final = result.history, result.final
    assert final["epochs_run"] == 8 and not final["diverged"] and final["test_acc"] > 0.5
    assert final["undos"] == sum(m.undone for m in history) >= 1
    assert all(m.diverged or m.val_loss >= 2.0 for m in history if m.undone)  # only bad epochs were undone ...
    assert history[0].undone and final["final_lr"] < RUN["lr"]  # ... and each undo cut the LR (x0.1)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line.get("undone", False) for line in lines[:-1]] == [m.undone for m in history]


def test_an_undo_from_a_controller_that_does_not_declare_it_is_an_error() -> None:
    c = SaysUndoWithoutDeclaring()
    c.reset(1.0, 5)
    with pytest.raises(RuntimeError, match="does not declare may_undo"):
        c.act(EpochMetrics(epoch=1, lr=1.0, train_loss=1.0, val_loss=math.inf, diverged=True))


def test_a_controller_that_must_undo_is_refused_in_one_line_where_nothing_can_be_rewound() -> None:
    import torch

    from lrpilot import PolicyScheduler

    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="model=") as err:
        PolicyScheduler(optimizer, UndoOnDivergence(), total_epochs=5)  # no model= to rewind
    assert "\n" not in str(err.value)
    from lrpilot.envs.episodes import EvalCase, run_controller
    from lrpilot.envs.lr_control import LRControlEnv

    with pytest.raises(ValueError, match="undo") as err:  # an environment configured without undo
        run_controller(LRControlEnv(task="digits-mlp", epochs=2), EvalCase("digits-mlp", 1e-3, 0), UndoOnDivergence())
    assert "\n" not in str(err.value)


def test_a_run_interrupted_between_undos_resumes_to_the_same_result(tmp_path) -> None:
    config = RunConfig(controller="undo-on-divergence", **RUN)
    whole = run_training(config)

    class Stop(Exception):
        pass

    def stop_at_epoch_3(metrics: EpochMetrics) -> None:
        if metrics.epoch == 3:
            raise Stop  # after epoch 2's checkpoint (epochs 1 and 2 undone), before epoch 3's
    with pytest.raises(Stop):
        run_training(config, tmp_path, on_epoch=stop_at_epoch_3)
    resumed = run_training(config, tmp_path)
    strip = lambda ms: [{k: v for k, v in m.to_dict().items() if k != "seconds"} for m in ms]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history)
    assert {k: v for k, v in resumed.final.items() if k != "wall_time"} == {
        k: v for k, v in whole.final.items() if k != "wall_time"}


def test_compare_counts_undos_per_run_and_shows_an_undo_column_only_when_a_run_undid(tmp_path) -> None:
    from rich.console import Console

    from lrpilot.experiments.report import build_report, summary_tables
    from lrpilot.experiments.runner import Execution, run_study
    from lrpilot.experiments.study import Study

    study = Study(tasks=("digits-mlp",), controllers=("undo-on-divergence", "constant", "rule"), lrs=(30.0, 0.01),
                  seeds=1, epochs=8, device="cpu", task_options={"digits-mlp": {"width": 16}},
                  imports=("test_run_undo",))
    run_study(study, tmp_path, Execution(workers=1, progress=False))
    analysis = build_report(tmp_path, console=Console(file=open(tmp_path / "out.txt", "w"), width=80), plots=False)
    by_lr = {t.title: t for t in summary_tables(analysis)}
    high, low = (next(t for title, t in by_lr.items() if f"lr {lr}" in title) for lr in ("30", "0.01"))
    names = [c.header for c in high.columns]
    assert "undo" in names and "undo" not in [c.header for c in low.columns]  # only where a run undid
    undos = {row[0]: row[names.index("undo")] for row in high.rows}
    assert int(undos["undo-on-divergence"]) >= 1 and undos["constant"] == "0" and undos["rule"] == "0"
    assert "| undos |" in (tmp_path / "report.md").read_text()
    assert max(len(line) for line in (tmp_path / "out.txt").read_text().splitlines()) <= 80


def test_a_complete_collapse_is_retried_at_a_hundredth_of_its_lr() -> None:
    """digits-cnn at LR 0.1 with Adam ends its first epoch predicting one class with an output that no
    longer depends on the input (spread 0): the guard undoes it with two cuts, and the retry at 1e-3 learns."""
    result = run_training(RunConfig(controller="constant+guard", task="digits-cnn", seed=0, epochs=2, lr=0.1,
                                    device="cpu"))
    first, retry = result.history
    assert first.undone and first.val_spread == 0.0 and first.val_top_share == 1.0
    assert retry.lr == pytest.approx(1e-3) and not retry.undone
    assert result.final["undos"] == 1 and result.final["test_acc"] > 0.5
