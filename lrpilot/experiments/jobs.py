"""What both backends of the runner share: the job of one run, how a study runs, and the
execution of one run in a worker (a local process or a Ray task).

:func:`execute_run` trains one run to its end (resuming it) and returns its outcome as
plain values: ``{"ok": True, "metrics": ...}``, or ``{"ok": False, "error": ...}`` for a run
that crashed (an exception, ``torch.OutOfMemoryError``), so one crash never stops a study.
A full disk is the exception: the outcome says ``disk_full`` and the study stops
(:class:`DiskFullError`), keeping every finished run.
"""

from __future__ import annotations

import errno
import math
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lrpilot.experiments.run import METRICS_FILE, RunConfig, run_training
from lrpilot.experiments.study import import_plugins

__all__ = ["Execution", "Job", "Tick", "DiskFullError", "execute_run", "describe_error", "is_disk_full",
           "available_cpus"]

Tick = Callable[[list[str]], None]
"""Called by a backend about twice a second with the names of the runs in flight (for the progress display)."""


@dataclass(frozen=True)
class Execution:
    """How a study runs (none of it changes the results)."""

    workers: int | None = None
    """Local worker processes; None: one per CPU core (one per GPU when the device is CUDA).
    With ``ray="local"`` it is the number of CPUs the local Ray instance gets."""
    ray: str | None = None
    """None: local processes; ``"local"``: a local Ray instance; else a Ray address (``ray://host:10001``, ``auto``)."""
    gpus_per_run: float = 0.0
    """GPUs each Ray task reserves (fractions share a GPU)."""
    runs_per_gpu: int = 1
    """Local runs placed on each visible GPU at once (a batch-64 ResNet-18 leaves a large GPU mostly idle);
    sets the default number of workers on CUDA and, with Ray, ``gpus_per_run = 1 / runs_per_gpu`` when unset.
    Ignored on a CPU."""
    cpus_per_run: float = 1.0
    """CPUs each Ray task reserves (also its torch thread count)."""
    force: bool = False
    """Delete the results of a different study found in the directory and start afresh."""
    progress: bool = True
    """Show the live progress display."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1):
            raise ValueError(f"workers must be an integer >= 1 or None, got {self.workers!r}")
        if isinstance(self.runs_per_gpu, bool) or not isinstance(self.runs_per_gpu, int) or self.runs_per_gpu < 1:
            raise ValueError(f"runs_per_gpu must be an integer >= 1, got {self.runs_per_gpu!r}")
        for key in ("gpus_per_run", "cpus_per_run"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
        if self.ray is not None and not (isinstance(self.ray, str) and self.ray.strip()):
            raise ValueError(f"ray must be 'local' or a Ray address, got {self.ray!r}")


@dataclass(frozen=True)
class Job:
    """One run to execute: what a worker needs, as plain picklable values."""

    name: str
    """The run's name (its directory in the store)."""
    config: dict[str, Any]
    """``RunConfig.to_dict()`` of the run."""
    run_dir: str
    """Where ``run_training`` writes the run's checkpoint and metrics."""
    imports: tuple[str, ...]
    """Plugin modules to import first (custom tasks and controllers)."""


class DiskFullError(OSError):
    """The results disk is full (or over quota): the study stops; every finished run is kept."""


_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left on device" and "disk quota exceeded"."""
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


def available_cpus() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def execute_run(job: Job, threads: int | None = None) -> dict[str, Any]:
    """Train one run to the end (resuming it); a crash is returned as ``{"ok": False, "error": ...}``."""
    try:
        import_plugins(job.imports)
        if threads:
            import torch

            torch.set_num_threads(threads)
        run_training(RunConfig.from_dict(job.config), job.run_dir)
        return {"ok": True, "metrics": (Path(job.run_dir) / METRICS_FILE).read_text(), "memory": _memory()}
    except Exception as exc:  # any crash of one run is that run's result; the study goes on
        _free_accelerator_memory()
        return {"ok": False, "error": describe_error(exc), "traceback": traceback.format_exc(),
                "disk_full": is_disk_full(exc)}  # ... except a full disk, which stops the study


def _memory() -> tuple[int, float]:
    """(pid, resident set size in MiB) of this process; the peak where /proc is missing (macOS, Windows)."""
    try:
        with open("/proc/self/statm") as fh:
            return os.getpid(), int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource  # ru_maxrss: KiB on Linux, bytes on macOS

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return os.getpid(), peak / (2**20 if sys.platform == "darwin" else 2**10)


def describe_error(exc: BaseException) -> str:
    """One line: the exception type and message, with a hint for out-of-memory errors."""
    text = " ".join(str(exc).split())[:500]
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if type(exc).__name__ == "OutOfMemoryError":
        line += " (out of accelerator memory: lower batch_size, or run fewer runs per GPU: --workers / --gpus-per-run)"
    return line


def _free_accelerator_memory() -> None:
    torch = sys.modules.get("torch")  # only if this worker imported it: no import just to free memory
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
