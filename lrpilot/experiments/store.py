"""The result store: one directory per study, safe to resume after a crash or ``kill -9``.

Layout::

    DIR/study.json                 the exact study configuration (written before any run)
    DIR/runs/<run name>/metrics.jsonl   one JSON line per epoch, then {"final": ...} (written by run_training)
    DIR/runs/<run name>/checkpoint.pt   the last finished epoch of an unfinished run
    DIR/runs/<run name>/failed.json     the error of the last attempt, when it crashed
    DIR/report.md, DIR/summary.csv, DIR/plots/   written by the report

Every file is written atomically, so a run is either finished (its ``metrics.jsonl``
ends with the final record), unfinished (resumed from its checkpoint), failed
(retried on the next invocation) or not started. One ``lrpilot compare`` at a time
holds a lock on the directory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrpilot.atomic import write_json_atomic, write_text_atomic
from lrpilot.experiments.run import CHECKPOINT_FILE, METRICS_FILE, RunConfig, read_metrics
from lrpilot.experiments.study import Study
from lrpilot.metrics import EpochMetrics

__all__ = ["StudyStore", "RunRecord", "read_study", "STUDY_FILE", "RUNS_DIR", "FAILED_FILE", "REPORT_OUTPUTS"]

STUDY_FILE = "study.json"
RUNS_DIR = "runs"
FAILED_FILE = "failed.json"
LOCK_FILE = ".lock"
REPORT_OUTPUTS = ("report.md", "summary.csv", "plots")
_FORMAT = "lrpilot-study"


@dataclass
class RunRecord:
    """What the store holds for one run of a study."""

    config: RunConfig
    """The run's configuration."""
    status: str
    """``done``, ``failed``, ``partial`` (has a checkpoint) or ``pending``."""
    history: list[EpochMetrics] = field(default_factory=list)
    """Per-epoch metrics written so far."""
    final: dict[str, Any] | None = None
    """The final record (test metrics, wall time...) of a finished run."""
    error: str | None = None
    """The error of the last attempt of a failed run."""

    @property
    def name(self) -> str:
        """The run's directory name."""
        return self.config.name


class StudyStore:
    """A study's results directory; use :meth:`open` to claim it for running a study."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs = self.root / RUNS_DIR
        self._lock_fd: int | None = None

    # -- claiming the directory ---------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, study: Study, *, force: bool = False,
             fingerprints: dict[str, str] | None = None) -> "StudyStore":
        """Check, lock and (re)write ``study.json``; refuse a directory of another study unless ``force``.

        ``fingerprints`` (spec -> hash of a learned policy's files) count as part of the
        study: the same ``policy:default`` with another policy file is another study.
        """
        store = cls(root)
        store._prepare_dir()
        store._lock()
        try:
            store._claim(study, force, fingerprints or {})
            for partial_write in store.runs.glob("*/.*.tmp"):  # left by a kill -9 mid-write; we hold the lock
                partial_write.unlink(missing_ok=True)
        except BaseException:
            store.close()
            raise
        return store

    def _prepare_dir(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"output path {self.root} exists and is not a directory")
        try:
            self.runs.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise PermissionError(f"output directory {self.root} is not writable ({exc.strerror or exc})") from None

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; one study per directory is then the user's job
            return
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(f"{self.root} is in use by another `lrpilot compare`; wait for it to end") from None
        self._lock_fd = fd

    def _claim(self, study: Study, force: bool, fingerprints: dict[str, str]) -> None:
        path = self.root / STUDY_FILE
        if path.exists():
            try:
                saved = read_study(self.root)
                differs = [k for k, v in study.identity().items() if saved.identity()[k] != v]
                saved_prints = json.loads(path.read_text()).get("fingerprints")  # None: written before they existed
                differs += [f"the policy behind {spec}" for spec in sorted(set(saved_prints or ()) | set(fingerprints))
                            if saved_prints is not None and saved_prints.get(spec) != fingerprints.get(spec)]
            except ValueError as exc:
                differs = [f"unreadable: {exc}"]
            if differs and not force:
                raise ValueError(
                    f"{self.root} holds results of a different study (differs in: {', '.join(differs)}); "
                    "use another --out, or --force to delete those results and start afresh"
                )
            if differs:
                self._wipe()
        else:
            foreign = sorted(p.name for p in self.root.iterdir() if p.name not in (LOCK_FILE, RUNS_DIR))
            if foreign or any(self.runs.iterdir()):
                raise ValueError(f"{self.root} is not empty and holds no {STUDY_FILE}; choose a new or empty directory")
        write_json_atomic(path, {"format": _FORMAT, "version": 1, "study": study.to_dict(), "fingerprints": fingerprints})

    def _wipe(self) -> None:
        """Delete what a study wrote here (nothing else)."""
        shutil.rmtree(self.runs, ignore_errors=False)
        self.runs.mkdir()
        for name in REPORT_OUTPUTS:
            target = self.root / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)

    def close(self) -> None:
        """Release the directory lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "StudyStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------
    def run_dir(self, name: str) -> Path:
        """``DIR/runs/<name>``; a name that would leave ``DIR/runs`` is refused."""
        path = self.runs / name
        if not name or name in (".", "..") or any(c in name for c in "/\\\0") or path.resolve().parent != self.runs.resolve():
            raise ValueError(f"run name {name!r} is not a plain directory name inside {self.runs}")
        return path

    def record(self, config: RunConfig) -> RunRecord:
        """The run's current state in the store."""
        directory = self.run_dir(config.name)
        try:
            parsed = read_metrics(directory / METRICS_FILE)
        except ValueError as exc:
            return RunRecord(config, "failed", error=str(exc))
        history, final = parsed if parsed is not None else ([], None)
        if final is not None:
            return RunRecord(config, "done", history, final)
        failed = directory / FAILED_FILE
        if failed.exists():
            return RunRecord(config, "failed", history, error=_read_error(failed))
        status = "partial" if history or (directory / CHECKPOINT_FILE).exists() else "pending"
        return RunRecord(config, status, history)

    def records(self, study: Study) -> list[RunRecord]:
        """Every run of ``study``, in the study's order."""
        return [self.record(config) for config in study.run_configs()]

    def mark_done(self, name: str, metrics_text: str | None = None) -> None:
        """Record a finished run; ``metrics_text`` fills in a store the worker could not write to."""
        directory = self.run_dir(name)
        parsed = read_metrics(directory / METRICS_FILE)
        if (parsed is None or parsed[1] is None) and metrics_text:
            write_text_atomic(directory / METRICS_FILE, metrics_text)
        (directory / FAILED_FILE).unlink(missing_ok=True)

    def mark_failed(self, name: str, error: str, detail: str = "") -> None:
        """Record a crashed run (``failed.json``); the next invocation retries it."""
        write_json_atomic(self.run_dir(name) / FAILED_FILE, {
            "error": error, "traceback": detail, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })


def _read_error(path: Path) -> str:
    try:
        return str(json.loads(path.read_text())["error"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable {path.name}"


def read_study(root: str | Path) -> Study:
    """The study a results directory was made for (its ``study.json``)."""
    path = Path(root) / STUDY_FILE
    if not path.exists():
        raise FileNotFoundError(f"{root} holds no {STUDY_FILE}; is it the --out directory of `lrpilot compare`?")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not an lrpilot study file (not UTF-8 JSON)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("study"), dict):
        raise ValueError(f"{path} is not an lrpilot study file")
    return Study.from_dict(data["study"], source=str(path))
