"""The report's PNG plots (matplotlib, drawn on ``Figure`` objects: no pyplot, no global backend).

Per setting (task × optimiser × initial LR): validation accuracy and loss curves per
controller (mean over seeds with a CI band) and the LR traces (log scale, one line per
seed). Per task: final test accuracy per controller (a point per seed, the mean and its
CI). Legends carry the number of runs.

The x axis is the budget spent, in epochs: a record is drawn where its interval ended
(``elapsed_epochs`` with control intervals, else its epoch), and an LR over the interval it
trained. An interval that was undone (the run rewound to its start) is marked with an ``x`` on
every curve and trace, and the legend says so.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from lrpilot.experiments.stats import mean_ci

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lrpilot.experiments.analysis import Analysis, RunScore, Setting
    from lrpilot.metrics import EpochMetrics

__all__ = ["write_plots", "figures", "setting_label", "slug", "position", "UNDONE_MARKER"]

UNDONE_MARKER = "x"
"""The marker of an undone interval in every plot."""
UNDONE_LABEL = "x: interval undone (rewound)"


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (no path separators, no leading dot)."""
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("._") or "plot"


def setting_label(setting: "Setting") -> str:
    """``task, adam, lr 0.001``."""
    task, optimizer, lr = setting
    return f"{task}, {optimizer}, lr {lr:g}"


def position(metrics: "EpochMetrics") -> float:
    """Where a record sits on the x axis: the epochs of budget spent when its interval ended
    (``elapsed_epochs`` of a run with control intervals, else its epoch)."""
    return float(metrics.epoch if metrics.elapsed_epochs is None else metrics.elapsed_epochs)


def write_plots(analysis: "Analysis", out_dir: str | Path) -> list[Path]:
    """Draw every plot into ``out_dir``; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [_save(fig, out / name) for name, fig in figures(analysis).items()]


def figures(analysis: "Analysis") -> "dict[str, Figure]":
    """Every plot of the report, by file name: per setting ``curves__*.png`` and ``lr__*.png``, per task
    ``test_acc__*.png``."""
    colors = _colors(analysis)
    out = {}
    for setting in analysis.settings():
        scores = [s for s in analysis.scores if s.setting == setting]
        name = slug(f"{setting[0]}__{setting[1]}__lr{setting[2]:g}")
        out[f"curves__{name}.png"] = _curves(scores, setting, colors)
        out[f"lr__{name}.png"] = _lr_traces(scores, setting, colors)
    for task in dict.fromkeys(s[0] for s in analysis.settings()):
        out[f"test_acc__{slug(task)}.png"] = _final_acc(analysis, task, colors)
    return out


def _colors(analysis: "Analysis") -> dict[str, str]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    names = dict.fromkeys([*analysis.study.controllers, *analysis.study.lr_free_controllers])
    return {c: cmap(i % 10) for i, c in enumerate(names)}


def _save(fig: "Figure", path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _by_controller(scores: list["RunScore"]) -> dict[str, list["RunScore"]]:
    out: dict[str, list[RunScore]] = {}
    for s in scores:
        out.setdefault(s.controller, []).append(s)
    return out


def _curves(scores: list["RunScore"], setting: "Setting", colors: dict[str, str]):  # noqa: ANN202
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 4))
    acc_ax, loss_ax = fig.subplots(1, 2)
    for controller, runs in _by_controller(scores).items():
        label = f"{controller} (n={len(runs)})"
        _band(acc_ax, runs, "val_acc", colors[controller], label, scale=100.0)
        _band(loss_ax, runs, "val_loss", colors[controller], label, log=True)
        _mark_undone(acc_ax, runs, lambda m: None if m.val_acc is None else 100.0 * m.val_acc, colors[controller])
        _mark_undone(loss_ax, runs, lambda m: m.val_loss, colors[controller])
    acc_ax.set(title=f"val accuracy: {setting_label(setting)}", xlabel="epochs trained", ylabel="val accuracy (%)")
    loss_ax.set(title="val loss (mean, 95% CI)", xlabel="epochs trained", ylabel="val loss", yscale="log")
    _undone_legend_entry(acc_ax, scores)
    _legend(acc_ax)
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _legend(ax: "Axes") -> None:
    if ax.get_legend_handles_labels()[0]:  # a setting whose every run diverged at epoch 1 has no line
        ax.legend(fontsize="small")


def _mark_undone(ax: "Axes", runs: list["RunScore"], value: "Callable[[EpochMetrics], float | None]",
                 color: str) -> None:
    """An ``x`` at each undone interval of each run, at the run's own value there (non-finite ones left out)."""
    points = [(position(m), v) for r in runs for m in r.history if m.undone
              for v in [value(m)] if v is not None and math.isfinite(v)]
    if points:
        ax.plot(*zip(*points), linestyle="none", marker=UNDONE_MARKER, color=color, markersize=7, zorder=4)


def _undone_legend_entry(ax: "Axes", scores: list["RunScore"]) -> None:
    """A legend entry explaining the ``x``, where a run of the plot undid an interval."""
    if any(m.undone for s in scores for m in s.history):
        ax.plot([], [], linestyle="none", marker=UNDONE_MARKER, color="black", label=UNDONE_LABEL)


def _band(ax: "Axes", runs: list["RunScore"], key: str, color: str, label: str, scale: float = 1.0,
          log: bool = False) -> None:
    """Mean over seeds per interval with its CI band; an interval counts the runs that reached it without diverging.

    Runs of one plot share their control interval, so the k-th records of all runs sit at the
    same x. On a log axis the band's lower end stops at the lowest value seen (a t interval of
    few runs can reach below zero, which a log axis cannot show).
    """
    epochs = max((len(r.history) for r in runs), default=0)
    xs, means, lows, highs = [], [], [], []
    for e in range(epochs):
        values = [getattr(r.history[e], key) for r in runs if e < len(r.history) and not r.history[e].diverged]
        est = mean_ci(values)
        if est.n:
            low = est.low if est.n > 1 else est.mean
            xs.append(position(next(r.history[e] for r in runs if e < len(r.history))))
            means.append(est.mean * scale)
            lows.append((max(low, min(v for v in values if v is not None)) if log else low) * scale)
            highs.append((est.high if est.n > 1 else est.mean) * scale)
    if xs:
        ax.plot(xs, means, color=color, label=label, marker="." if len(xs) < 15 else None)
        ax.fill_between(xs, lows, highs, color=color, alpha=0.2, linewidth=0)


def _lr_traces(scores: list["RunScore"], setting: "Setting", colors: dict[str, str]):  # noqa: ANN202
    from matplotlib.figure import Figure

    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for controller, runs in _by_controller(scores).items():
        for i, run in enumerate(runs):
            if not run.history:
                continue
            ends = [position(m) for m in run.history]  # a record's LR trained over [previous end, its end)
            lrs = [m.lr for m in run.history]
            ax.step([0.0, *ends], lrs + lrs[-1:], where="post", color=colors[controller], alpha=0.6, linewidth=1.2,
                    label=f"{controller} (n={len(runs)})" if i == 0 else None)
        _mark_undone(ax, runs, lambda m: m.lr, colors[controller])
    ax.set(title=f"learning rate: {setting_label(setting)}", xlabel="epochs trained (each LR over the interval it ran)",
           ylabel="learning rate", yscale="log")
    _undone_legend_entry(ax, scores)
    _legend(ax)
    ax.grid(alpha=0.3, which="both")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _final_acc(analysis: "Analysis", task: str, colors: dict[str, str]):  # noqa: ANN202
    from matplotlib.figure import Figure

    settings = [s for s in analysis.settings() if s[0] == task]
    fig = Figure(figsize=(max(5.0, 1.1 * len(analysis.study.controllers)) * len(settings), 4.2))
    axes = fig.subplots(1, len(settings), squeeze=False)[0]
    for ax, setting in zip(axes, settings):
        rows = [r for r in analysis.summary if r.setting == setting]
        for x, row in enumerate(rows):
            accs = [100 * s.test_acc for s in analysis.scores if s.setting == setting and s.controller == row.controller]
            jitter = [x + 0.12 * (i - (len(accs) - 1) / 2) / max(1, len(accs)) for i in range(len(accs))]
            ax.scatter(jitter, accs, color=colors[row.controller], s=18, alpha=0.8, zorder=2)
            est = row.metrics["test_acc"]
            if est.n > 1 and math.isfinite(est.low):
                ax.errorbar([x], [100 * est.mean], yerr=[[100 * (est.mean - est.low)], [100 * (est.high - est.mean)]],
                            fmt="_", color="black", capsize=6, markersize=14, zorder=3)
            elif est.n:
                ax.plot([x], [100 * est.mean], "_", color="black", markersize=14, zorder=3)
        ax.set_xticks(range(len(rows)), [f"{r.controller}\nn={r.runs}" for r in rows], fontsize="small", rotation=30)
        ax.set(title=f"final test accuracy: {setting_label(setting)}", ylabel="test accuracy (%)")
        ax.grid(alpha=0.3, axis="y")
    return fig
