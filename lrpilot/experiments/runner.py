"""Running a study: every unfinished run, in parallel local worker processes or as Ray tasks.

:func:`run_study` validates the study, claims its results directory, skips finished
runs, resumes unfinished ones from their last epoch checkpoint and records each run
that crashes (an exception, ``torch.OutOfMemoryError``, a worker process that dies)
in ``failed.json`` without stopping the others. Divergence is a result, not a crash.
Both backends (:mod:`~lrpilot.experiments.local_backend`, :mod:`~lrpilot.experiments.ray_backend`)
call the same :func:`~lrpilot.experiments.jobs.execute_run` and feed the same store.

Example:
    >>> study = Study(tasks=("digits-mlp",), controllers=("constant", "rule"), seeds=2, epochs=3)
    >>> summary = run_study(study, "results/tiny", Execution(workers=2))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrpilot.experiments.jobs import DiskFullError, Execution, Job, available_cpus, execute_run, is_disk_full
from lrpilot.experiments.local_backend import default_workers, run_local
from lrpilot.experiments.progress import StudyProgress
from lrpilot.experiments.ray_backend import run_ray
from lrpilot.experiments.store import StudyStore
from lrpilot.experiments.run import RunConfig
from lrpilot.experiments.study import Study
from lrpilot.training.intervals import Interval

# Execution, Job, DiskFullError, execute_run, available_cpus and default_workers live in jobs.py and
# local_backend.py; they stay importable from here, where the README and earlier code find them.
__all__ = ["Execution", "StudySummary", "Job", "DiskFullError", "run_study", "execute_run", "available_cpus",
           "default_workers"]


@dataclass(frozen=True)
class StudySummary:
    """What one invocation did."""

    total: int
    """Runs in the study."""
    already_done: int
    """Runs found finished in the store and skipped."""
    finished: int
    """Runs that finished (or diverged) in this invocation."""
    failed: tuple[str, ...]
    """Names of the runs that crashed in this invocation (retried next time)."""
    seconds: float
    """Wall time of this invocation."""
    worker_memory: tuple[tuple[int, float], ...] = ()
    """(worker pid, resident memory in MiB) after each run of this invocation, in finishing order;
    a worker whose memory grows run after run shows here first (local workers only)."""


def run_study(study: Study, root: str | Path, execution: Execution = Execution(), console: Any = None) -> StudySummary:
    """Run every unfinished run of ``study`` into ``root``; returns what this invocation did."""
    start = time.perf_counter()
    study.validate()
    execution.validate()
    configs = study.run_configs()
    with StudyStore.open(root, study, force=execution.force, fingerprints=study.fingerprints()) as store:
        done = {c.name for c in configs if store.record(c).status == "done"}
        jobs = [Job(c.name, c.to_dict(), str(store.run_dir(c.name)), study.imports) for c in configs if c.name not in done]
        progress = StudyProgress(console, epochs={c.name: _records(c) for c in configs},
                                 run_dirs={c.name: store.run_dir(c.name) for c in configs},
                                 done=done, enabled=execution.progress)
        failed: list[str] = []
        memory: list[tuple[int, float]] = []
        if execution.ray is not None:
            outcomes = run_ray(jobs, execution, progress.tick)
        else:
            outcomes = run_local(jobs, execution, progress.tick, device=study.device, imports=study.imports)
        with progress, contextlib.closing(outcomes):
            for name, outcome in outcomes:  # closing() stops the workers at once if this loop raises
                try:
                    if outcome.get("disk_full"):
                        raise OSError(errno.ENOSPC, outcome["error"])
                    if outcome.get("memory"):
                        memory.append(tuple(outcome["memory"]))
                    if outcome["ok"]:
                        store.mark_done(name, outcome.get("metrics"))
                    else:
                        store.mark_failed(name, outcome["error"], outcome.get("traceback", ""))
                        failed.append(name)
                except OSError as exc:
                    if not is_disk_full(exc):
                        raise
                    kept = sum(store.record(c).status == "done" for c in configs)
                    raise DiskFullError(exc.errno, f"disk full while {name} was running ({exc.strerror}): the study "
                                        f"stopped; {kept} finished runs are kept in {store.root}; free space and "
                                        "run the same command again to resume") from None
                progress.finished(name, outcome["ok"], outcome.get("error"))
    return StudySummary(len(configs), len(done), len(jobs) - len(failed), tuple(failed), time.perf_counter() - start,
                        tuple(memory))


def _records(config: RunConfig) -> int:
    """The metrics records a finished run writes, which the progress bar counts: one per epoch, or per
    interval (``0.25``: four per epoch). An interval of steps depends on the data's size, which is not
    loaded here: its runs count as one record per epoch, so their share of the bar fills early."""
    epochs = config.build_task().epochs
    interval = Interval.parse(config.interval)
    return epochs if interval.fraction is None else epochs * round(1 / interval.fraction)
