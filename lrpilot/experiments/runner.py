"""Running a study: every unfinished run, in parallel local worker processes or as Ray tasks.

:func:`run_study` validates the study, claims its results directory, skips finished
runs, resumes unfinished ones from their last epoch checkpoint and records each run
that crashes (an exception, ``torch.OutOfMemoryError``, a worker process that dies)
in ``failed.json`` without stopping the others. Divergence is a result, not a crash.
Both backends call the same :func:`execute_run` and feed the same store.

Example:
    >>> study = Study(tasks=("digits-mlp",), controllers=("constant", "rule"), seeds=2, epochs=3)
    >>> summary = run_study(study, "results/tiny", Execution(workers=2))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import math
import multiprocessing
import os
import sys
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from lrpilot.experiments.progress import StudyProgress
from lrpilot.experiments.run import METRICS_FILE, RunConfig, run_training
from lrpilot.experiments.store import StudyStore
from lrpilot.experiments.study import Study, import_plugins

__all__ = ["Execution", "StudySummary", "Job", "DiskFullError", "run_study", "execute_run", "available_cpus"]

Tick = Callable[[list[str]], None]


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


def run_study(study: Study, root: str | Path, execution: Execution = Execution(), console: Any = None) -> StudySummary:
    """Run every unfinished run of ``study`` into ``root``; returns what this invocation did."""
    start = time.perf_counter()
    study.validate()
    execution.validate()
    configs = study.run_configs()
    with StudyStore.open(root, study, force=execution.force, fingerprints=study.fingerprints()) as store:
        done = {c.name for c in configs if store.record(c).status == "done"}
        jobs = [Job(c.name, c.to_dict(), str(store.run_dir(c.name)), study.imports) for c in configs if c.name not in done]
        progress = StudyProgress(console, epochs={c.name: c.build_task().epochs for c in configs},
                                 run_dirs={c.name: store.run_dir(c.name) for c in configs},
                                 done=done, enabled=execution.progress)
        failed: list[str] = []
        memory: list[tuple[int, float]] = []
        backend = _run_ray if execution.ray is not None else _run_local
        with progress, contextlib.closing(backend(jobs, study, execution, progress.tick)) as outcomes:
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
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- local worker processes ---------------------------------------------------------
def default_workers(device: str, runs_per_gpu: int = 1) -> int:
    """One worker per CPU core, or ``runs_per_gpu`` per visible GPU when the runs go to CUDA.

    Workers are pinned to GPUs round-robin, so each GPU holds ``runs_per_gpu`` runs at once.
    """
    from lrpilot.training.devices import resolve_device

    if resolve_device(device).type == "cuda":
        import torch

        return max(1, torch.cuda.device_count()) * runs_per_gpu
    return available_cpus()


def _gpu_ids(device: str) -> list[str]:
    """GPUs to spread local workers over (only when the device is unpinned and there are several)."""
    if device not in ("auto", "cuda"):
        return []
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]


def _init_worker(threads: int, imports: tuple[str, ...], gpu_ids: list[str], counter: Any) -> None:
    """Worker start-up (before torch touches CUDA): pick a GPU, set the thread count, import plugins."""
    if gpu_ids:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_ids[index % len(gpu_ids)]
    import torch

    torch.set_num_threads(threads)
    import_plugins(imports)


def _run_local(jobs: list[Job], study: Study, execution: Execution, tick: Tick) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run ``jobs`` in a spawn-context process pool, at most ``workers`` at a time."""
    if not jobs:
        return
    workers = min(execution.workers or default_workers(study.device, execution.runs_per_gpu), len(jobs))
    threads = max(1, available_cpus() // workers)
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    queue = deque(jobs)
    while queue:  # a new pool after a worker process died
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                   initargs=(threads, study.imports, _gpu_ids(study.device), counter))
        try:
            yield from _drain(pool, queue, workers, tick)
        except BaseException:  # Ctrl-C, or the caller stopped: end the running runs now, they resume later
            _terminate(pool)
            raise
        pool.shutdown(wait=True)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers at once (runs lose at most their current epoch, which they redo on resume).

    ``ProcessPoolExecutor`` offers this only from Python 3.14 (``terminate_workers``), hence ``_processes``.
    """
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _drain(pool: ProcessPoolExecutor, queue: deque[Job], workers: int, tick: Tick) -> Iterator[tuple[str, dict[str, Any]]]:
    running: dict[Any, Job] = {}
    while queue or running:
        while queue and len(running) < workers:
            job = queue.popleft()
            running[pool.submit(execute_run, job)] = job
        finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
        tick([job.name for job in running.values()])
        for future in finished:
            job = running.pop(future)
            try:
                yield job.name, future.result()
            except BrokenProcessPool:
                yield job.name, _DIED
                for other, job in running.items():  # the pool is broken: every run in it ended
                    try:
                        yield job.name, other.result(timeout=60)
                    except Exception:  # BrokenProcessPool, or no answer
                        yield job.name, _DIED
                return


_DIED = {"ok": False, "error": "worker process died (killed, out of host memory, or a crash in native code) "
         "while this run or one beside it was running"}


def _run_ray(jobs: list[Job], study: Study, execution: Execution, tick: Tick) -> Iterator[tuple[str, dict[str, Any]]]:
    from lrpilot.experiments.ray_backend import run_ray  # lazy: ray is an optional extra

    yield from run_ray(jobs, execution, tick)
