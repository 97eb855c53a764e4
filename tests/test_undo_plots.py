"""Reports show undos (issue 15, item 5): the plots mark each undone interval with an x where it ended and
say so in the legend, records with ``elapsed_epochs`` sit at that position, report.md lists the undone
intervals per run, summary.csv counts them, and evaluate-controller has an undo column only when a run undid."""

from __future__ import annotations

import csv
import io

import pytest

from lrpilot.experiments.analysis import analyse
from lrpilot.experiments.controller_eval import build_tables, render_markdown as eval_markdown, terminal_tables
from lrpilot.experiments.plots import UNDONE_MARKER, figures
from lrpilot.experiments.report import render_csv, render_markdown
from lrpilot.experiments.run import RunConfig
from lrpilot.experiments.scoring import Score
from lrpilot.experiments.store import RunRecord
from lrpilot.experiments.study import Study
from lrpilot.metrics import EpochMetrics

LR = 0.01


def _m(epoch: int, lr: float, val_acc: float, *, undone: bool = False, elapsed: float | None = None) -> EpochMetrics:
    return EpochMetrics(epoch=epoch, lr=lr, train_loss=1.0 / epoch, val_loss=2.0 - val_acc, val_acc=val_acc,
                        undone=undone, elapsed_epochs=elapsed)


def _analysis(histories: dict[str, list[EpochMetrics]], interval: str | None = None):
    """A finished study of one run per controller (digits-mlp, adam, LR 0.01, seed 0) with these histories."""
    study = Study(tasks=("digits-mlp",), controllers=tuple(histories), seeds=1, lrs=(LR,), epochs=2,
                  interval=interval, reference=next(iter(histories)))
    records = []
    for controller, history in histories.items():
        config = RunConfig(task="digits-mlp", controller=controller, lr=LR, epochs=2, interval=interval)
        undos = sum(m.undone for m in history)
        final = {"test_acc": history[-1].val_acc, "test_loss": 0.5, "diverged": False, "wall_time": 1.0,
                 **({"undos": undos} if undos else {})}
        records.append(RunRecord(config, "done", history, final))
    return analyse(records, study)


def _marks(ax) -> list[tuple[float, float]]:  # noqa: ANN001 - a matplotlib Axes
    """The (x, y) of every x marker drawn on ``ax`` (the legend's proxy has no data)."""
    return [(float(x), float(y)) for line in ax.lines if line.get_marker() == UNDONE_MARKER
            for x, y in zip(line.get_xdata(), line.get_ydata())]


def _legend_texts(ax) -> list[str]:  # noqa: ANN001
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


# a per-epoch run that undid its second epoch (LR then cut x0.1) beside one that never undid
PER_EPOCH = {
    "guarded": [_m(1, LR, 0.50), _m(2, LR, 0.11, undone=True), _m(3, LR / 10, 0.70), _m(4, LR / 10, 0.80)],
    "constant": [_m(1, LR, 0.50), _m(2, LR, 0.60), _m(3, LR, 0.65), _m(4, LR, 0.70)],
}
# the same at --interval 0.5: records every half epoch, the third undone
INTERVALS = {
    "guarded": [_m(1, LR, 0.3, elapsed=0.5), _m(2, LR, 0.5, elapsed=1.0), _m(3, LR, 0.1, undone=True, elapsed=1.5),
                _m(4, LR / 10, 0.7, elapsed=2.0)],
    "constant": [_m(1, LR, 0.3, elapsed=0.5), _m(2, LR, 0.4, elapsed=1.0), _m(3, LR, 0.5, elapsed=1.5),
                 _m(4, LR, 0.6, elapsed=2.0)],
}


def test_the_lr_trace_marks_the_undone_epoch_with_an_x_and_says_so_in_the_legend() -> None:
    figs = figures(_analysis(PER_EPOCH))
    ax = figs["lr__digits-mlp_adam_lr0.01.png"].axes[0]
    assert _marks(ax) == [pytest.approx((2.0, LR))]  # where the undone epoch ended, at the LR it trained with
    assert any("undone" in text for text in _legend_texts(ax))
    guarded = next(line for line in ax.lines if line.get_label().startswith("guarded"))
    assert list(guarded.get_xdata()) == [0.0, 1.0, 2.0, 3.0, 4.0]  # epoch e's LR drawn over [e - 1, e)
    assert list(guarded.get_ydata()) == pytest.approx([LR, LR, LR / 10, LR / 10, LR / 10])


def test_the_curves_mark_the_undone_epoch_at_the_runs_own_value() -> None:
    acc_ax, loss_ax = figures(_analysis(PER_EPOCH))["curves__digits-mlp_adam_lr0.01.png"].axes
    assert _marks(acc_ax) == [pytest.approx((2.0, 11.0))]
    assert _marks(loss_ax) == [pytest.approx((2.0, 2.0 - 0.11))]
    assert any("undone" in text for text in _legend_texts(acc_ax))


def test_runs_that_never_undid_have_no_mark_and_no_legend_entry() -> None:
    figs = figures(_analysis({"constant": PER_EPOCH["constant"], "rule": PER_EPOCH["constant"]}))
    for name in ("lr__digits-mlp_adam_lr0.01.png", "curves__digits-mlp_adam_lr0.01.png"):
        ax = figs[name].axes[0]
        assert _marks(ax) == [] and not any("undone" in text for text in _legend_texts(ax))


def test_interval_runs_are_drawn_at_their_elapsed_epochs() -> None:
    figs = figures(_analysis(INTERVALS, interval="0.5"))
    lr_ax = figs["lr__digits-mlp_adam_lr0.01.png"].axes[0]
    assert _marks(lr_ax) == [pytest.approx((1.5, LR))]
    guarded = next(line for line in lr_ax.lines if line.get_label().startswith("guarded"))
    assert list(guarded.get_xdata()) == [0.0, 0.5, 1.0, 1.5, 2.0]  # each LR over the half epoch it trained
    acc_ax = figs["curves__digits-mlp_adam_lr0.01.png"].axes[0]
    constant = next(line for line in acc_ax.lines if line.get_label().startswith("constant"))
    assert list(constant.get_xdata()) == [0.5, 1.0, 1.5, 2.0]
    assert list(constant.get_ydata()) == pytest.approx([30.0, 40.0, 50.0, 60.0])
    assert _marks(acc_ax) == [pytest.approx((1.5, 10.0))]


def test_report_lists_each_undone_interval_and_the_csv_counts_undos() -> None:
    analysis = _analysis(INTERVALS, interval="0.5")
    text = render_markdown(analysis, [])
    assert "Control interval: 0.5 epoch (2 decisions per epoch)" in text
    section = text.split("## Undone intervals", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| `digits-mlp__guarded"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:4] == ["`digits-mlp__guarded__i0.5__lr0.01__s0`", "3", "1.5", "0.01"]  # interval 3, at 1.5 epochs
    assert "digits-mlp__constant" not in section
    rows = {r["controller"]: r for r in csv.DictReader(io.StringIO(render_csv(analysis)))}
    assert rows["guarded"]["undos"] == "1" and rows["constant"]["undos"] == "0"
    assert "## Undone intervals" not in render_markdown(_analysis({"constant": PER_EPOCH["constant"]}), [])


def test_an_undone_interval_counts_neither_for_best_val_acc_nor_convergence() -> None:
    high = [_m(1, LR, 0.5, elapsed=0.5), _m(2, LR, 0.99, undone=True, elapsed=1.0), _m(3, LR / 10, 0.8, elapsed=1.5),
            _m(4, LR / 10, 0.8, elapsed=2.0)]
    score = next(s for s in _analysis({"guarded": high}, interval="0.5").scores)
    assert score.best_val_acc == pytest.approx(0.8)  # not the discarded 0.99
    assert score.convergence_epoch == pytest.approx(1.5)  # in epochs of budget spent, not the interval index 3
    assert score.undos == 1


def _eval_scores(undos: int) -> list[Score]:
    return [Score("t", "adam", lr, c, seed, acc, undos=undos if c == "a+guard" else 0)
            for lr in (1e-3, 1e-2) for seed in (0, 1) for c, acc in (("a+guard", 0.9), ("rule", 0.8))]


def test_evaluate_controller_counts_undos_per_controller_and_shows_the_column_only_when_a_run_undid() -> None:
    tables = build_tables(_eval_scores(undos=2), specs=["a+guard"])
    overall = {r["controller"]: r for r in tables["overall"]}
    assert overall["a+guard"]["undos"] == 8 and overall["rule"]["undos"] == 0  # 2 in each of 4 runs
    head = next(line for line in eval_markdown(tables).splitlines() if line.startswith("| controller | runs"))
    assert head.rstrip(" |").endswith("diverged | undos")
    table = terminal_tables(tables)[0]
    names = [c.header for c in table.columns]
    assert names[-1] == "undo"
    assert {row[0]: row[-1] for row in table.rows} == {"a+guard": "8", "rule": "0"}
    assert "undo: intervals undone" in table.notes[0]
    plain = build_tables(_eval_scores(undos=0), specs=["a+guard"])
    assert "undo" not in [c.header for c in terminal_tables(plain)[0].columns]
    assert "undos" not in eval_markdown(plain)
