"""The report of a study: ``DIR/report.md``, ``DIR/summary.csv``, ``DIR/plots/*.png`` and a terminal table.

Written at the end of ``lrpilot compare`` and by ``lrpilot report DIR`` (which works on
a study still running or partly failed: it reports the runs that finished and says
how many did not). Every figure carries the number of runs behind it.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from lrpilot.atomic import write_text_atomic
from lrpilot.experiments.analysis import METRICS, Analysis, PairedRow, SummaryRow, analyse
from lrpilot.experiments.plots import setting_label, write_plots
from lrpilot.experiments.stats import Estimate
from lrpilot.experiments.store import StudyStore, read_study
from lrpilot.experiments.study import import_plugins

__all__ = ["build_report", "write_report", "print_summary", "format_estimate"]

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
    if est.n == 0 or not math.isfinite(est.mean):
        return "n/a (n=0)"
    text = f"{est.mean * scale:.{digits}f}"
    if est.n > 1 and math.isfinite(est.low):
        text += f" [{est.low * scale:.{digits}f}, {est.high * scale:.{digits}f}]"
    return f"{text} n={est.n}"


def _metric(row: SummaryRow, key: str) -> str:
    scale, digits = (100.0, 2) if key in _PERCENT else (1.0, 1 if key in ("wall_time", "convergence_epoch") else 4)
    return format_estimate(row.metrics[key], scale, digits)


def _p(test: Any) -> str:
    return "n/a" if test.p_value is None else f"{test.p_value:.3g}"


def _counts(analysis: Analysis) -> str:
    status: dict[str, int] = {}
    for record in analysis.records:
        status[record.status] = status.get(record.status, 0) + 1
    diverged = sum(s.diverged for s in analysis.scores)
    return (f"{len(analysis.records)} runs planned: {status.get('done', 0)} finished ({diverged} diverged), "
            f"{status.get('failed', 0)} failed, {status.get('partial', 0) + status.get('pending', 0)} not finished.")


def render_markdown(analysis: Analysis, images: list[Path]) -> str:
    """The whole ``report.md``."""
    study = analysis.study
    lines = [
        "# lrpilot study report", "",
        f"Tasks: {', '.join(study.tasks)}. Controllers: {', '.join(study.controllers)}. "
        f"Seeds: {study.seeds}. Epochs: {study.epochs or 'task default'}. Device: {study.device}.", "",
        _counts(analysis), "",
        "Figures are means with 95% t-based confidence intervals in brackets and the number of runs (n). "
        "Accuracies and differences of accuracy are in percent (points). A diverged run scores 0 test accuracy; "
        "its test loss, final train loss and convergence epoch are left out. Convergence epoch: first epoch whose "
        f"best-so-far val accuracy is within {100 * study.convergence_acc_tol:g} points of the run's best. "
        "Paired tests: two-sided Wilcoxon signed-rank on final test accuracy over seeds (zero differences dropped); "
        "with n pairs the smallest possible p is 2/2^n (0.0625 for 5). Regret: best test accuracy any controller reached "
        "on the same task and seed (any initial LR) minus the run's. Rank: within each setting and seed, 1 = best.", "",
    ]
    for setting in analysis.settings():
        lines += [f"## {setting_label(setting)}", "", *_summary_table(analysis, setting), ""]
        paired = [p for p in analysis.paired if p.setting == setting]
        if paired:
            lines += ["Paired comparisons (final test accuracy, this controller minus the other):", "",
                      *_paired_table(paired), ""]
    lines += ["## Over all initial LRs", "", "| task | controller | mean regret (points) | mean rank |", "|---|---|---|---|"]
    lines += [f"| {r.task} | {r.controller} | {format_estimate(r.regret, 100)} | {format_estimate(r.rank)} |"
              for r in analysis.overall]
    failed = [r for r in analysis.records if r.status == "failed"]
    if failed:
        lines += ["", "## Failed runs (retried by the next `lrpilot compare`)", ""]
        lines += [f"- `{r.name}`: {r.error}" for r in failed]
    if images:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.as_posix()})" for p in images]
    return "\n".join(lines) + "\n"


def _summary_table(analysis: Analysis, setting: Any) -> list[str]:
    head = ["controller", "runs", *(label for _, label in METRICS), "diverged", "regret (points)", "rank"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in (r for r in analysis.summary if r.setting == setting):
        cells = [row.controller, str(row.runs), *(_metric(row, key) for key, _ in METRICS),
                 f"{row.diverged}/{row.runs}", format_estimate(row.regret, 100), format_estimate(row.rank)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paired_table(rows: list[PairedRow]) -> list[str]:
    lines = ["| controller | versus | pairs | mean difference (points) | Wilcoxon p | won / tied / lost |", "|---|---|---|---|---|---|"]
    for r in rows:
        t = r.test
        lines.append(f"| {r.controller} | {r.versus} ({r.role}) | {t.difference.n} | {format_estimate(t.difference, 100)} "
                     f"| {_p(t)} | {t.wins} / {t.ties} / {t.losses} |")
    return lines


def render_csv(analysis: Analysis) -> str:
    """``summary.csv``: one row per setting × controller, every figure with its CI and n."""
    header = ["task", "optimizer", "lr", "controller", "runs", "diverged"]
    for key in [k for k, _ in METRICS] + ["regret", "rank"]:
        header += [f"{key}_mean", f"{key}_ci_low", f"{key}_ci_high", f"{key}_n"]
    for role in ("reference", "best_baseline"):
        header += [f"vs_{role}", f"vs_{role}_diff_mean", f"vs_{role}_diff_ci_low", f"vs_{role}_diff_ci_high",
                   f"vs_{role}_pairs", f"vs_{role}_wilcoxon_p", f"vs_{role}_wins", f"vs_{role}_ties", f"vs_{role}_losses"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in analysis.summary:
        cells: list[Any] = [*row.setting[:2], f"{row.setting[2]:g}", row.controller, row.runs, row.diverged]
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
    """The main table on the terminal, one per setting: means (test accuracy ± its CI half-width); n per row."""
    from rich import box
    from rich.table import Table

    reference = analysis.study.reference
    for setting in analysis.settings():
        table = Table(title=setting_label(setting), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("controller", "n", "test acc %", "test loss", "conv. ep.", "time s", f"Δ vs {reference} (p)",
                       "regret", "rank"):
            table.add_column(column, justify="left" if column == "controller" else "right")
        for row in (r for r in analysis.summary if r.setting == setting):
            versus = next((p for p in analysis.paired if p.setting == setting and p.controller == row.controller
                           and p.role == "reference"), None)
            delta = "" if versus is None else _brief(versus.test.difference, row.runs, 100, 2, sign=True) + f" ({_p(versus.test)})"
            table.add_row(row.controller, str(row.runs) + (f" [red]({row.diverged} div.)[/]" if row.diverged else ""),
                          _plus_minus(row.metrics["test_acc"], row.runs), _brief(row.metrics["test_loss"], row.runs, 1, 3),
                          _brief(row.metrics["convergence_epoch"], row.runs, 1, 1), _brief(row.metrics["wall_time"], row.runs, 1, 1),
                          delta, _brief(row.regret, row.runs, 100, 2), _brief(row.rank, row.runs, 1, 2))
        console.print(table)


def _plus_minus(est: Estimate, runs: int) -> str:
    """``92.69 ± 2.43`` (the t interval is symmetric about the mean)."""
    text = _brief(est, runs, 100, 2)
    return f"{text} ± {100 * (est.high - est.mean):.2f}" if est.n > 1 and math.isfinite(est.high) else text


def _brief(est: Estimate, runs: int, scale: float, digits: int, sign: bool = False) -> str:
    """The mean alone; its n is added when it differs from the row's number of runs."""
    if est.n == 0 or not math.isfinite(est.mean):
        return "n/a"
    text = f"{est.mean * scale:{'+' if sign else ''}.{digits}f}"
    return text if est.n == runs else f"{text} (n={est.n})"
