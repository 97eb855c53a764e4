"""One scoring for `lrpilot compare`/`report` and `lrpilot evaluate-controller`; terminal tables that fit 80 columns."""

from __future__ import annotations

import io
import math
import re

import pytest
from rich.console import Console

from lrpilot.experiments.analysis import analyse
from lrpilot.experiments.controller_eval import build_tables, print_tables
from lrpilot.experiments.report import print_summary
from lrpilot.experiments.run import RunConfig
from lrpilot.experiments.scoring import Column, Score, TerminalTable, estimate_cell, print_table, regret_and_rank
from lrpilot.experiments.stats import Estimate
from lrpilot.experiments.store import RunRecord
from lrpilot.experiments.study import Study
from lrpilot.metrics import EpochMetrics

SIXTEEN = "lookahead-cosine"  # a controller name of exactly 16 characters
LONG = "policy:runs/sweep-3/dagger-basu/policy"  # a learned policy given by its path


def _record(controller: str, lr: float, seed: int, acc: float, diverged: bool = False, seconds: float = 2345.6):
    config = RunConfig(task="digits-mlp", controller=controller, seed=seed, lr=lr, epochs=50)
    history = [EpochMetrics(epoch=e, lr=lr, train_loss=1.0 / e, val_loss=1.0 / e if not (diverged and e == 50) else math.nan,
                            val_acc=None if diverged and e == 50 else min(acc, 0.5 + e / 60), diverged=diverged and e == 50)
               for e in range(1, 51)]
    final = {"test_acc": None if diverged else acc, "test_loss": None if diverged else 1.2345 * (1 - acc),
             "diverged": diverged, "wall_time": seconds, "epochs_run": 50, "final_lr": lr, "config": {}}
    return RunRecord(config, "done", history, final)


def _records(controllers: tuple[str, ...], lrs: tuple[float, ...] = (1e-4, 1e-3), seeds: int = 3) -> list[RunRecord]:
    """Every controller × LR × seed, with accuracies that differ by controller, LR and seed; one divergence."""
    out = []
    for seed in range(seeds):
        for j, lr in enumerate(lrs):
            for k, controller in enumerate(controllers):
                acc = 0.62 + 0.05 * k + 0.08 * j + 0.013 * seed * (k % 3)
                out.append(_record(controller, lr, seed, min(acc, 0.9931),
                                   diverged=(controller == controllers[-1] and lr == lrs[-1] and seed == 1)))
    return out


# -- one scoring ---------------------------------------------------------------------------
def test_compare_and_evaluate_controller_agree_on_regret_rank_and_paired_tests():
    controllers = ("constant", "rule", "bold", SIXTEEN)
    study = Study(tasks=("digits-mlp",), controllers=controllers, seeds=3, lrs=(1e-4, 1e-3), epochs=50)
    analysis = analyse(_records(controllers), study)
    scores = [s.score() for s in analysis.scores]
    tables = build_tables(scores, specs=["bold"], reference="rule")
    overall = {r["controller"]: r for r in tables["overall"]}
    per_lr = {r["controller"]: r for r in tables["per_lr"]}
    for row in analysis.overall:
        assert overall[row.controller]["regret"]["mean"] == pytest.approx(row.regret.mean, abs=1e-12)
        assert overall[row.controller]["rank"]["mean"] == pytest.approx(row.rank.mean, abs=1e-12)
    for row in analysis.summary:
        assert per_lr[row.controller]["regret"][repr(row.setting[2])]["mean"] == pytest.approx(row.regret.mean, abs=1e-12)
        assert per_lr[row.controller]["rank"][repr(row.setting[2])]["mean"] == pytest.approx(row.rank.mean, abs=1e-12)
    # paired tests: in one setting, evaluate-controller's "bold versus rule" is compare's "bold against the reference"
    one_lr = [s for s in scores if s.lr == 1e-3]
    paired = next(p for p in build_tables(one_lr, specs=["bold"])["paired"] if p["versus"] == "rule")
    row = next(p for p in analysis.paired if p.setting[2] == 1e-3 and p.controller == "bold" and p.role == "reference")
    assert (paired["wins"], paired["ties"], paired["losses"]) == (row.test.wins, row.test.ties, row.test.losses)
    assert paired["mean_diff_points"] == pytest.approx(100 * row.test.difference.mean)
    assert paired["p_value"] == row.test.p_value


def test_lrfree_runs_are_scored_against_the_oracle_but_not_part_of_it_nor_ranked():
    scores = [Score("t", "adam", 1e-3, "a", 0, 0.8), Score("t", "adam", 1e-3, "b", 0, 0.7),
              Score("t", "prodigy", None, "constant+prodigy", 0, 0.9, lrfree=True)]
    regret, rank = regret_and_rank(scores)
    assert regret == pytest.approx([0.0, 0.1, -0.1])
    assert rank[:2] == [1.0, 2.0] and math.isnan(rank[2])
    # compare marks no run LR-free: the same runs there make the LR-free optimiser the oracle, ranked in its own setting
    regret, rank = regret_and_rank([Score(s.task, s.optimizer, s.lr, s.controller, s.seed, s.test_acc) for s in scores])
    assert regret == pytest.approx([0.1, 0.2, 0.0]) and rank == [1.0, 2.0, 1.0]


@pytest.mark.parametrize("kwargs, expected", [
    ({}, "97.31±0.40"),
    ({"ci": " ± "}, "97.31 ± 0.40"),
    ({"ci": "[]", "n": True}, "97.31 [96.91, 97.71] n=3"),
    ({"ci": "", "sign": True}, "+97.31"),
])
def test_estimate_cell_formats(kwargs, expected):
    assert estimate_cell(Estimate(0.9731, 0.9691, 0.9771, 3), 100, **kwargs) == expected


def test_estimate_cell_without_interval_or_value():
    assert estimate_cell(Estimate(0.5, math.nan, math.nan, 1), 100) == "50.00"
    assert estimate_cell(Estimate(math.nan, math.nan, math.nan, 0)) == "–"
    assert estimate_cell(Estimate(math.nan, math.nan, math.nan, 0), missing="n/a (n=0)") == "n/a (n=0)"
    with pytest.raises(ValueError, match="ci must be"):
        estimate_cell(Estimate(0.5, 0.4, 0.6, 2), ci="+-")


# -- terminal tables at 80 columns ---------------------------------------------------------------
def _printed(show, *args) -> list[str]:
    console = Console(width=80, file=io.StringIO())  # a file, as when the output goes to a log
    show(*args, console)
    return console.file.getvalue().splitlines()


def _check_fits(lines: list[str]) -> None:
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, "\n".join(too_wide)


def _rows_naming(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if line.startswith(name + " ")]


def test_compare_tables_fit_80_columns_with_whole_names_and_a_legend_for_a_long_path():
    controllers = ("constant", "rule", "policy:default", SIXTEEN, LONG)
    study = Study(tasks=("digits-mlp",), controllers=controllers, seeds=3, lrs=(1e-4, 1e-3), epochs=50)
    lines = _printed(print_summary, analyse(_records(controllers), study))
    _check_fits(lines)
    for name in ("constant", "rule", "policy:default", SIXTEEN):
        assert len(_rows_naming(lines, name)) == 2, name  # printed whole, once per setting
    assert LONG not in "\n".join(line for line in lines if "=" not in line)  # the path is shortened in the rows...
    assert sum(line.strip().endswith("= " + LONG) for line in lines) == 2  # ... with a legend under each table
    assert any("±" in line and line.startswith("rule ") for line in lines)  # the CI in the cell of the mean
    assert any("div" in line for line in lines) and any("*" in line for line in lines)  # the divergence shows


def test_evaluate_controller_tables_fit_80_columns():
    names = ["policy:default", SIXTEEN, LONG, "constant", "rule", "bold", "plateau"]
    scores = [Score(task, "adam", lr, name, seed, 0.5 + 0.04 * k + 0.1 * j + 0.01 * seed, diverged=False)
              for task in ("digits-mlp", "wine-mlp") for j, lr in enumerate((1e-5, 1e-4, 1e-3, 1e-2))
              for k, name in enumerate(names) for seed in range(3)]
    scores += [Score(task, optimizer, None, f"constant+{optimizer}", seed, 0.8, lrfree=True)
               for task in ("digits-mlp", "wine-mlp") for optimizer in ("prodigy", "schedulefree-adamw") for seed in range(3)]
    lines = _printed(print_tables, build_tables(scores, specs=["policy:default", SIXTEEN, LONG]))
    _check_fits(lines)
    for name in ("policy:default", SIXTEEN, "constant+prodigy"):
        assert _rows_naming(lines, name), name
    text = "\n".join(lines)
    assert "constant+schedulefree-adamw" in text  # 27 characters: whole where the table has room for it
    assert LONG in text and any(line.strip().endswith("= " + LONG) for line in lines)  # shortened in the paired table
    assert "-12.00±" not in text and "±" in text


def test_a_table_too_wide_for_any_layout_is_split_into_column_groups():
    columns = (Column("controller", names=True), *(Column(f"metric {i}") for i in range(12)))
    rows = tuple((name, *(f"{100 * i + k:.2f}±0.{k}3" for i in range(12))) for k, name in enumerate(["[bold]x[/]", SIXTEEN]))
    lines = _printed(print_table, TerminalTable("wide", columns, rows, ("a key under the table, " * 8,)))
    _check_fits(lines)
    titles = [line for line in lines if line.startswith("wide")]
    assert len(titles) >= 2 and titles[0] == f"wide (part 1 of {len(titles)})"
    assert len(_rows_naming(lines, SIXTEEN)) == len(titles)  # the name column repeats in every part
    assert len(_rows_naming(lines, "[bold]x[/]")) == len(titles)  # names are text, never rich markup
    for i in range(12):  # every column once
        assert sum(bool(re.search(rf"metric {i}\b", line)) for line in lines) == 1
