"""The report of a study: ``DIR/report.md``, ``DIR/summary.csv``, ``DIR/plots/*.png`` and a terminal table.

Written at the end of ``lrpilot compare`` and by ``lrpilot report DIR`` (which works on
a study still running or partly failed: it reports the runs that finished and says
how many did not). Every figure carries the number of runs behind it. Cells and tables
are rendered by :mod:`~lrpilot.experiments.scoring` (the terminal tables fit 80 columns).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path
from typing import Any

from rich.text import Text

from lrpilot.atomic import write_text_atomic
from lrpilot.experiments.analysis import METRICS, Analysis, PairedRow, RunScore, Setting, SummaryRow, analyse
from lrpilot.experiments.plots import position, setting_label, write_plots
from lrpilot.experiments.scoring import Column, TerminalTable, cadence_note, estimate_cell, markdown_table, print_table
from lrpilot.experiments.stats import Estimate
from lrpilot.experiments.store import StudyStore, read_study
from lrpilot.experiments.study import import_plugins, interval_setting

__all__ = ["build_report", "write_report", "print_summary", "summary_tables", "format_estimate"]

_PERCENT = {"test_acc", "best_val_acc"}


def build_report(root: str | Path, *, console: Any = None, plots: bool = True) -> Analysis:
    """Analyse the study in ``root``, write its report files and print the main table."""
    root = Path(root)
    study = read_study(root)
    import_plugins(study.imports)
    analysis = analyse(StudyStore(root).records(study), study)
    write_report(root, analysis, plots=plots)
    if console is not None:
        print_summary(analysis, console)
        console.print(f"report written to {root / 'report.md'}")
    return analysis


def write_report(root: str | Path, analysis: Analysis, *, plots: bool = True) -> list[Path]:
    """Write ``report.md``, ``summary.csv`` and (with ``plots``) the PNGs; returns the files."""
    root = Path(root)
    images = write_plots(analysis, root / "plots") if plots else []
    write_text_atomic(root / "report.md", render_markdown(analysis, [p.relative_to(root) for p in images]))
    write_text_atomic(root / "summary.csv", render_csv(analysis))
    return [root / "report.md", root / "summary.csv", *images]


def format_estimate(est: Estimate, scale: float = 1.0, digits: int = 2) -> str:
    """``94.17 [93.05, 95.29] n=3``; a single value has no interval; no value is ``n/a``."""
    return estimate_cell(est, scale, digits, ci="[]", n=True, missing="n/a (n=0)")


def _metric(row: SummaryRow, key: str) -> str:
    scale, digits = (100.0, 2) if key in _PERCENT else (1.0, 1 if key in ("wall_time", "convergence_epoch") else 4)
    return format_estimate(row.metrics[key], scale, digits)


def _p(test: Any, missing: str = "n/a") -> str:
    return missing if test.p_value is None else f"{test.p_value:.3g}"


def _counts(analysis: Analysis) -> str:
    status: dict[str, int] = {}
    for record in analysis.records:
        status[record.status] = status.get(record.status, 0) + 1
    diverged = sum(s.diverged for s in analysis.scores)
    return (f"{len(analysis.records)} runs planned: {status.get('done', 0)} finished ({diverged} diverged), "
            f"{status.get('failed', 0)} failed, {status.get('partial', 0) + status.get('pending', 0)} not finished.")


def _threads(analysis: Analysis) -> list[str]:
    """A line on the torch threads the finished runs used (recorded since 2026-12-03): one count, or a warning
    when they differ, since a run's numbers are bit-identical only at the same count (docs/compare.md)."""
    counts: dict[int, int] = {}
    for record in analysis.records:
        threads = (record.final or {}).get("torch_threads")
        if isinstance(threads, int):
            counts[threads] = counts.get(threads, 0) + 1
    if not counts:
        return []
    if len(counts) == 1:
        return [f"Torch threads per run: {next(iter(counts))}."]
    spread = ", ".join(f"{threads} ({runs} run{'s' if runs > 1 else ''})"
                       for threads, runs in sorted(counts.items()))
    return [f"**The runs used different torch thread counts: {spread}.** A run repeated with another count can end "
            "differently (docs/compare.md, \"Threads\"); `--workers` sets the count (cores // workers)."]


def render_markdown(analysis: Analysis, images: list[Path]) -> str:
    """The whole ``report.md``."""
    study = analysis.study
    lines = [
        "# lrpilot study report", "",
        f"Tasks: {', '.join(study.tasks)}. Controllers: {', '.join(study.controllers)}. "
        f"Seeds: {study.seeds}. Epochs: {study.epochs or 'task default'}. Device: {study.device}.", "",
        _counts(analysis), *_threads(analysis), "",
        "Figures are means with 95% t-based confidence intervals in brackets and the number of runs (n). "
        "Accuracies and differences of accuracy are in percent (points). A diverged run scores 0 test accuracy; "
        "its test loss, final train loss and convergence epoch are left out. Convergence epoch: first epoch whose "
        f"best-so-far val accuracy is within {100 * study.convergence_acc_tol:g} points of the run's best. "
        "Paired tests: two-sided Wilcoxon signed-rank on final test accuracy over seeds (zero differences dropped); "
        "with n pairs the smallest possible p is 2/2^n (0.0625 for 5). Regret: best test accuracy any controller reached "
        "on the same task and seed (any initial LR) minus the run's. Rank: within each setting and seed, 1 = best.", "",
    ]
    if study.interval is not None or study.val_subset is not None:
        lines += [cadence_note(interval_setting(study.interval), study.val_subset), ""]
    for setting in analysis.settings():
        lines += [f"## {setting_label(setting)}", "", *_summary_table(analysis, setting), ""]
        paired = [p for p in analysis.paired if p.setting == setting]
        if paired:
            lines += ["Paired comparisons (final test accuracy, this controller minus the other):", "",
                      *_paired_table(paired), ""]
    lines += ["## Over all initial LRs", "", *markdown_table(
        ["task", "controller", "mean regret (points)", "mean rank"],
        [[r.task, r.controller, format_estimate(r.regret, 100), format_estimate(r.rank)] for r in analysis.overall])]
    lines += _undone_section(analysis.scores)
    failed = [r for r in analysis.records if r.status == "failed"]
    if failed:
        lines += ["", "## Failed runs (retried by the next `lrpilot compare`)", ""]
        lines += [f"- `{r.name}`: {r.error}" for r in failed]
    if images:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.as_posix()})" for p in images]
    return "\n".join(lines) + "\n"


def _summary_table(analysis: Analysis, setting: Setting) -> list[str]:
    rows = [row for row in analysis.summary if row.setting == setting]
    undos = any(row.undos for row in rows)  # a column only where a run undid
    head = ["controller", "runs", *(label for _, label in METRICS), "diverged", *(["undos"] if undos else []),
            "regret (points)", "rank"]
    return markdown_table(head, [
        [row.controller, str(row.runs), *(_metric(row, key) for key, _ in METRICS), f"{row.diverged}/{row.runs}",
         *([str(row.undos)] if undos else []), format_estimate(row.regret, 100), format_estimate(row.rank)]
        for row in rows])


MAX_UNDONE_ROWS = 200
"""Most rows of the report's list of undone intervals (the count of the rest is given)."""


def _undone_section(scores: list[RunScore]) -> list[str]:
    """``## Undone intervals``: every interval a run undid, with the metrics that made it undo (empty
    when no run undid). ``at epoch``: the budget spent when it ended (undone intervals count)."""
    rows = [[f"`{s.name}`", str(m.epoch), f"{position(m):g}", f"{m.lr:.3g}", _fmt(m.train_loss),
             _fmt(m.val_loss), "" if m.val_acc is None else f"{100 * m.val_acc:.2f}", "yes" if m.diverged else ""]
            for s in scores for m in s.history if m.undone]
    if not rows:
        return []
    more = len(rows) - MAX_UNDONE_ROWS
    head = ["run", "interval", "at epoch", "lr", "train loss", "val loss", "val acc %", "diverged"]
    return ["", "## Undone intervals", "",
            f"{len(rows)} intervals undone in {sum(1 for s in scores if s.undos)} runs: each was trained and counts "
            "against the budget, then the run was rewound to its start and went on with the LR cut. "
            "Their metrics are left out of best val accuracy and convergence; the plots mark them with x.", "",
            *markdown_table(head, rows[:MAX_UNDONE_ROWS]),
            *(["", f"... and {more} more (each run's `metrics.jsonl` marks them `\"undone\": true`)."] if more > 0 else [])]


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "non-finite"


def _paired_table(rows: list[PairedRow]) -> list[str]:
    head = ["controller", "versus", "pairs", "mean difference (points)", "Wilcoxon p", "won / tied / lost"]
    return markdown_table(head, [
        [r.controller, f"{r.versus} ({r.role})", str(r.test.difference.n), format_estimate(r.test.difference, 100),
         _p(r.test), f"{r.test.wins} / {r.test.ties} / {r.test.losses}"] for r in rows])


def render_csv(analysis: Analysis) -> str:
    """``summary.csv``: one row per setting × controller, every figure with its CI and n."""
    header = ["task", "optimizer", "lr", "controller", "runs", "diverged", "undos"]
    for key in [k for k, _ in METRICS] + ["regret", "rank"]:
        header += [f"{key}_mean", f"{key}_ci_low", f"{key}_ci_high", f"{key}_n"]
    for role in ("reference", "best_baseline"):
        header += [f"vs_{role}", f"vs_{role}_diff_mean", f"vs_{role}_diff_ci_low", f"vs_{role}_diff_ci_high",
                   f"vs_{role}_pairs", f"vs_{role}_wilcoxon_p", f"vs_{role}_wins", f"vs_{role}_ties", f"vs_{role}_losses"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in analysis.summary:
        cells: list[Any] = [*row.setting[:2], f"{row.setting[2]:g}", row.controller, row.runs, row.diverged, row.undos]
        for est in [row.metrics[k] for k, _ in METRICS] + [row.regret, row.rank]:
            cells += [_num(est.mean), _num(est.low), _num(est.high), est.n]
        for role in ("reference", "best baseline"):
            match = next((p for p in analysis.paired if p.setting == row.setting and p.controller == row.controller
                          and p.role == role), None)
            if match is None:
                cells += [""] * 9
            else:
                t = match.test
                cells += [match.versus, _num(t.difference.mean), _num(t.difference.low), _num(t.difference.high),
                          t.difference.n, "" if t.p_value is None else f"{t.p_value:.6g}", t.wins, t.ties, t.losses]
        writer.writerow(cells)
    return buffer.getvalue()


def _num(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else ""


def print_summary(analysis: Analysis, console: Any) -> None:
    """The main table on the terminal, one per setting (see :func:`summary_tables`)."""
    for table in summary_tables(analysis):
        print_table(table, console)


def summary_tables(analysis: Analysis) -> list[TerminalTable]:
    """One terminal table per setting: per controller, the means (test accuracy with its CI), the
    difference to the reference with its Wilcoxon p, regret and rank; the last table carries the key."""
    tables = [_setting_table(analysis, setting) for setting in analysis.settings()]
    if not tables:
        return []
    fewer = any(str(cell).endswith("*") for table in tables for row in table.rows
                for cell, column in zip(row, table.columns) if not column.names)
    key = _key(analysis, any(row.diverged for row in analysis.summary), fewer, any(row.undos for row in analysis.summary))
    return [*tables[:-1], dataclasses.replace(tables[-1], notes=key)]


def _setting_table(analysis: Analysis, setting: Setting) -> TerminalTable:
    """The terminal table of one setting; a ``div`` column where a run of it diverged, an ``undo``
    column where a run of it undid an interval."""
    rows = [row for row in analysis.summary if row.setting == setting]
    divergence, undos = any(row.diverged for row in rows), any(row.undos for row in rows)
    headers = ("acc %", "loss", "conv", "time s", _delta(analysis), "p", "regret", "rank")
    columns = (Column("controller", names=True), Column("n"), *([Column("div")] if divergence else []),
               *([Column("undo")] if undos else []), *(Column(header) for header in headers))
    cells = tuple(_summary_cells(analysis, row, divergence, undos) for row in rows)
    return TerminalTable(setting_label(setting), columns, cells)


def _summary_cells(analysis: Analysis, row: SummaryRow, divergence: bool, undos: bool = False) -> tuple[Any, ...]:
    versus = next((p for p in analysis.paired if p.setting == row.setting and p.controller == row.controller
                   and p.role == "reference"), None)
    metric = row.metrics
    return (row.controller, str(row.runs),
            *([Text(str(row.diverged), style="red" if row.diverged else "")] if divergence else []),
            *([str(row.undos)] if undos else []),
            estimate_cell(metric["test_acc"], 100), _brief(metric["test_loss"], row.runs, 1, 3),
            _brief(metric["convergence_epoch"], row.runs, 1, 1), _brief(metric["wall_time"], row.runs, 1, 1),
            "" if versus is None else _brief(versus.test.difference, row.runs, 100, 2, sign=True),
            "" if versus is None else _p(versus.test, missing="–"),
            _brief(row.regret, row.runs, 100, 2), _brief(row.rank, row.runs, 1, 2))


def _delta(analysis: Analysis) -> str:
    """The header of the difference to the reference: ``Δ rule``, or ``Δ ref`` for a long reference name."""
    reference = analysis.study.reference
    return f"Δ {reference}" if len(reference) <= 8 else "Δ ref"


def _key(analysis: Analysis, divergence: bool, fewer: bool, undos: bool = False) -> tuple[str, ...]:
    """What the short headers of the terminal tables mean (paragraphs, wrapped to the console)."""
    key = ("acc %: final test accuracy, mean±95% CI; loss: final test loss; conv: convergence epoch; time s: "
           f"training seconds; {_delta(analysis)}: acc minus {analysis.study.reference}'s (points), p: its Wilcoxon "
           "p; regret: points below the best run of the task and seed at any LR; rank: 1 = best")
    key += "; div: diverged runs (acc 0)" if divergence else ""
    key += "; undo: intervals undone (all runs)." if undos else "."
    return (key, "*: over fewer runs than n (diverged runs have no loss or convergence epoch).") if fewer else (key,)


def _brief(est: Estimate, runs: int, scale: float, digits: int, sign: bool = False) -> str:
    """The mean alone, marked ``*`` when it stands on fewer values than the row's number of runs."""
    text = estimate_cell(est, scale, digits, ci="", sign=sign)
    return text + "*" if 0 < est.n < runs else text
