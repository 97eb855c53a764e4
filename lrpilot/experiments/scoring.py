"""Scores of runs against each other, and the tables that show them: one implementation for
``lrpilot compare`` / ``lrpilot report`` (:mod:`~lrpilot.experiments.analysis`) and
``lrpilot evaluate-controller`` (:mod:`~lrpilot.experiments.controller_eval`).

* **Regret**: per task and seed, the best final test accuracy any controller reached at any
  initial LR and optimiser (the per-task *oracle*) minus this run's. A run marked ``lrfree``
  (``evaluate-controller``'s learning-rate-free rows) is scored against the oracle but is not
  part of it; ``lrpilot compare`` marks none, so its LR-free rows count like any other run.
* **Rank**: within each task × optimiser × initial LR × seed, the runs ranked by test accuracy
  (1 = best, ties averaged, NaN last); ``lrfree`` runs have no rank (NaN).
* **Paired comparisons**: one controller's test accuracy minus another's, paired by task,
  optimiser, initial LR and seed (:func:`~lrpilot.experiments.stats.paired_comparison`).

Tables: :func:`estimate_cell` writes an :class:`~lrpilot.experiments.stats.Estimate` as its
mean with its CI; :func:`markdown_table` renders rows for the report files and
:func:`print_table` for the terminal, where every table fits the console's width (80 columns
when the output goes to a file or a pipe) without wrapping a row: headers are short, controller
names of up to 16 characters are printed whole, longer ones whole where they fit and otherwise
shortened with a legend under the table; a table that still does not fit is split into column
groups, each repeating the name columns.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Sequence

from rich import box
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from lrpilot.experiments.stats import Estimate, PairedTest, paired_comparison, rank_values

__all__ = ["Score", "regret_and_rank", "paired_test", "group_indices", "estimate_cell", "markdown_table", "cadence_note",
           "Column", "TerminalTable", "print_table", "NAME_WIDTH"]

NAME_WIDTH = 16
"""Controller names up to this long are never shortened on the terminal."""


@dataclass(frozen=True)
class Score:
    """One finished run, as scoring needs it."""

    task: str
    """Task name."""
    optimizer: str
    """Optimiser name."""
    lr: float | None
    """Initial LR (the task's default filled in); None for an LR-free run at its default."""
    controller: str
    """Controller spec (or a row name such as ``constant+prodigy``)."""
    seed: int
    """The run's seed: runs of one seed are paired and ranked together."""
    test_acc: float
    """Final test accuracy in [0, 1] (0 for a diverged run; NaN when the task has none)."""
    diverged: bool = False
    """The run diverged."""
    lrfree: bool = False
    """Scored against the oracle but neither part of it nor ranked (see the module docstring)."""
    undos: int = 0
    """Intervals the run undid (a controller that may undo, e.g. ``rule+guard``); 0 for every other run."""

    @property
    def block(self) -> tuple[str, str, float | None, int]:
        """(task, optimiser, initial LR, seed): the runs that are ranked and paired together."""
        return self.task, self.optimizer, self.lr, self.seed


def group_indices(keys: Iterable[Hashable]) -> dict[Hashable, list[int]]:
    """Key -> the positions where it occurs, keys in order of first occurrence."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    return dict(groups)


def regret_and_rank(scores: Sequence[Score]) -> tuple[list[float], list[float]]:
    """Regret and rank of each score, in order (see the module docstring); NaN where undefined.

    Example:
        >>> runs = [Score("t", "adam", 1e-3, "a", 0, 0.9), Score("t", "adam", 1e-2, "b", 0, 0.8)]
        >>> [round(r, 2) for r in regret_and_rank(runs)[0]], regret_and_rank(runs)[1]
        ([0.0, 0.1], [1.0, 1.0])
    """
    oracle: dict[tuple[str, int], float] = {}
    for s in scores:
        if not s.lrfree and math.isfinite(s.test_acc):
            oracle[(s.task, s.seed)] = max(oracle.get((s.task, s.seed), -math.inf), s.test_acc)
    regret = [oracle.get((s.task, s.seed), math.nan) - s.test_acc if math.isfinite(s.test_acc) else math.nan
              for s in scores]
    ranks: dict[int, float] = {}
    for block, idx in group_indices(None if s.lrfree else s.block for s in scores).items():
        if block is not None:
            ranks |= rank_values({i: scores[i].test_acc for i in idx})
    return regret, [ranks.get(i, math.nan) for i in range(len(scores))]


def paired_test(scores: Sequence[Score], controller: str, versus: str, confidence: float = 0.95) -> PairedTest:
    """``controller``'s test accuracy minus ``versus``'s, over the blocks (task, optimiser, LR, seed) both ran."""
    mine = {s.block: s.test_acc for s in scores if s.controller == controller}
    theirs = {s.block: s.test_acc for s in scores if s.controller == versus}
    shared = [block for block in mine if block in theirs]
    return paired_comparison([mine[b] for b in shared], [theirs[b] for b in shared], confidence)


# -- cells and markdown ---------------------------------------------------------------------
def estimate_cell(est: Estimate, scale: float = 1.0, digits: int = 2, *, ci: str = "±", sign: bool = False,
                  n: bool = False, missing: str = "–") -> str:
    """The mean of ``est`` (times ``scale``) with its CI, e.g. ``97.31±0.40``.

    ``ci`` is how the CI shows (only with n > 1): ``"±"`` or ``" ± "`` with its half-width,
    ``"[]"`` as the interval in brackets, ``""`` not at all. ``sign`` writes ``+`` before
    positive means, ``n`` adds `` n=N``; ``missing`` stands for no value.

    Example:
        >>> estimate_cell(Estimate(0.9731, 0.9691, 0.9771, 3), 100)
        '97.31±0.40'
        >>> estimate_cell(Estimate(0.9731, 0.9691, 0.9771, 3), 100, ci="[]", n=True)
        '97.31 [96.91, 97.71] n=3'
    """
    if ci not in ("±", " ± ", "[]", ""):
        raise ValueError(f"ci must be '±', ' ± ', '[]' or '', got {ci!r}")
    if est.n == 0 or not math.isfinite(est.mean):
        return missing
    text = f"{est.mean * scale:{'+' if sign else ''}.{digits}f}"
    if ci == "[]" and est.n > 1 and math.isfinite(est.low):
        text += f" [{est.low * scale:.{digits}f}, {est.high * scale:.{digits}f}]"
    elif ci and est.n > 1 and math.isfinite(est.low):
        text += f"{ci}{scale * (est.high - est.low) / 2:.{digits}f}"
    return f"{text} n={est.n}" if n else text


def cadence_note(interval: str | None, val_subset: int | None) -> str:
    """The sentence under a report's heading that says how often its runs decided and what they validated on.

    Example:
        >>> cadence_note("0.25", 200)[:80]
        'Control interval: 0.25 epoch (4 decisions per epoch); validation on a fixed subse'
    """
    if interval is None:
        every = "one epoch"
    elif interval.endswith("steps"):
        every = f"{interval[:-len('steps')]} optimizer steps"
    else:
        every = f"{interval} epoch ({round(1 / float(interval))} decisions per epoch)"
    subset = "the whole validation split" if val_subset is None else f"a fixed subset of {val_subset} examples"
    return f"Control interval: {every}; validation on {subset}. Undone intervals count against the budget."


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a markdown table."""
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers), *("| " + " | ".join(r) + " |" for r in rows)]


# -- the terminal -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column of a terminal table."""

    header: str
    """A short header (the table's notes explain abbreviations)."""
    names: bool = False
    """The cells are controller names: left-aligned, whole where they fit, else shortened with a legend."""


@dataclass(frozen=True)
class TerminalTable:
    """A table for the terminal: cells are plain text (never rich markup), or ``rich.text.Text`` for style."""

    title: str
    """Printed above the table."""
    columns: tuple[Column, ...]
    """The columns; name columns should come first (they repeat when the table is split)."""
    rows: tuple[tuple[str | Text, ...], ...]
    """One tuple of cells per row."""
    notes: tuple[str, ...] = ()
    """Lines printed under the table (what the headers mean)."""


def print_table(table: TerminalTable, console: Any) -> None:
    """Print ``table`` so that no row is wider than ``console.width`` (see the module docstring)."""
    wide = console.options.update_width(1_000_000)  # measure unclamped: console.measure() clips to the width
    parts = _fitted(table, lambda t: Measurement.get(console, wide, t).maximum <= console.width)
    for k, (part, legend) in enumerate(parts, start=1):
        if k > 1:
            console.print()
        suffix = f" (part {k} of {len(parts)})" if len(parts) > 1 else ""
        console.print(Text(table.title + suffix, style="bold", overflow="fold"))
        console.print(part)
        for line in legend:
            console.print(Text(line, overflow="fold"))
    if table.notes:
        console.print()
    for note in table.notes:
        console.print(Text(note, style="dim", overflow="fold"))
    console.print()


def _fitted(table: TerminalTable, fits: Callable[[Table], bool]) -> list[tuple[Table, list[str]]]:
    """The rich table(s) to print, each with the legend of shortened names under it: whole names
    where they fit (two spaces between columns, else one), else short names, else column groups."""
    short = _short_names(table)
    for names in ({}, short) if short else ({},):
        for padding in (1, 0):
            whole = _rich_table(table, range(len(table.columns)), names, padding)
            if fits(whole):
                return [(whole, _legend(names))]
    groups = _column_groups(table, short, fits)
    return [(_rich_table(table, group, short, 0), _legend(short) if k == len(groups) - 1 else [])
            for k, group in enumerate(groups)]


def _column_groups(table: TerminalTable, names: dict[str, str], fits: Callable[[Table], bool]) -> list[list[int]]:
    """The other columns in groups that fit beside the name columns (which every group repeats)."""
    keep = [i for i, c in enumerate(table.columns) if c.names]
    groups: list[list[int]] = [[]]
    for i in (i for i, c in enumerate(table.columns) if not c.names):
        if groups[-1] and not fits(_rich_table(table, keep + groups[-1] + [i], names, 0)):
            groups.append([])
        groups[-1].append(i)
    return [keep + group for group in groups]


def _short_names(table: TerminalTable) -> dict[str, str]:
    """Full name -> short form for every name longer than :data:`NAME_WIDTH`: its start and its end
    (``policy:…ger-basu``), numbered instead (``policy:runs/x…2``) where two would read the same."""
    long = dict.fromkeys(cell for row in table.rows for cell, column in zip(row, table.columns)
                         if column.names and isinstance(cell, str) and len(cell) > NAME_WIDTH)
    tail = NAME_WIDTH // 2
    short = {name: f"{name[:NAME_WIDTH - 1 - tail]}…{name[-tail:]}" for name in long}
    taken = [form for form in short.values() if list(short.values()).count(form) > 1]
    return {name: f"{name[:NAME_WIDTH - 1 - len(str(k))]}…{k}" if short[name] in taken else short[name]
            for k, name in enumerate(long, start=1)}


def _legend(names: dict[str, str]) -> list[str]:
    return [f"  {short} = {name}" for name, short in names.items()]


def _rich_table(table: TerminalTable, columns: Iterable[int], names: dict[str, str], padding: int) -> Table:
    """The columns ``columns`` of ``table`` (names replaced by their short forms in ``names``)."""
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, padding), collapse_padding=True)
    columns = list(columns)
    for i in columns:
        column = table.columns[i]
        out.add_column(column.header, justify="left" if column.names else "right", no_wrap=True)
    for row in table.rows:
        out.add_row(*(_cell(row[i], names if table.columns[i].names else {}) for i in columns))
    return out


def _cell(value: str | Text, names: dict[str, str]) -> Text:
    """Plain text (a name in its short form where it has one): never parsed as rich markup."""
    return Text(names.get(value, value)) if isinstance(value, str) else value
