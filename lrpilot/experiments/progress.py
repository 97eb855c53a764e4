"""The live display of a running study: runs done / running / failed and an ETA over epochs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["StudyProgress"]


class StudyProgress:
    """A rich progress bar counted in epochs (so the ETA moves within long runs) with run counts beside it.

    The epochs of running runs are read from their ``metrics.jsonl`` (one line per
    finished epoch), which needs no channel back from worker processes or Ray tasks.
    """

    def __init__(self, console: Any, *, epochs: dict[str, int], run_dirs: dict[str, Path],
                 done: set[str], enabled: bool = True) -> None:
        self.console = console
        self.epochs = epochs
        self.run_dirs = run_dirs
        self.done = set(done)
        self.failed: set[str] = set()
        self.running: list[str] = []
        self.enabled = enabled
        self._progress: Any = None
        self._bar: Any = None
        self._seen = {name: self._epochs_on_disk(name) for name in epochs if name not in done}

    def __enter__(self) -> "StudyProgress":
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]study"), BarColumn(), TextColumn("{task.fields[runs]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, speed_estimate_period=600.0,
            )
            self._progress.__enter__()
            self._bar = self._progress.add_task("study", total=sum(self.epochs.values()),
                                                completed=self._completed(), runs=self._runs_text())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.__exit__(*exc)

    def tick(self, running: list[str]) -> None:
        """Called while waiting: re-read the epochs of the running runs."""
        self.running = running
        for name in running:
            self._seen[name] = self._epochs_on_disk(name)
        self._refresh()

    def finished(self, name: str, ok: bool, error: str | None = None) -> None:
        """A run ended (finished, diverged or crashed)."""
        (self.done if ok else self.failed).add(name)
        self.running = [r for r in self.running if r != name]
        if not ok:
            message = f"[red]failed[/] {name}: {error}"
            if self._progress is not None:
                self._progress.console.print(message, markup=True, highlight=False)
            elif self.console is not None:
                self.console.print(message, markup=True, highlight=False)
        self._refresh()

    def _epochs_on_disk(self, name: str) -> int:
        try:
            lines = (self.run_dirs[name] / "metrics.jsonl").read_text().count("\n")
        except OSError:
            return 0
        return min(lines, self.epochs[name])

    def _completed(self) -> int:
        return sum(self.epochs[n] if n in self.done else self._seen.get(n, 0) for n in self.epochs)

    def _runs_text(self) -> str:
        text = f"{len(self.done)}/{len(self.epochs)} runs done, {len(self.running)} running"
        return text + (f", [red]{len(self.failed)} failed[/]" if self.failed else "")

    def _refresh(self) -> None:
        if self._progress is not None:
            self._progress.update(self._bar, completed=self._completed(), runs=self._runs_text())
