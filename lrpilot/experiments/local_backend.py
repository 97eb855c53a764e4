"""Running a study's runs in local worker processes (a spawn-context process pool).

At most ``workers`` runs at a time, each calling :func:`~lrpilot.experiments.jobs.execute_run`;
on CUDA, workers are pinned to the visible GPUs round-robin (``runs_per_gpu`` runs per GPU).
A worker process that dies (killed, out of host memory, a crash in native code) fails the
runs it was running and the study goes on in a new pool. Stopping the iteration (Ctrl-C, or
the caller's loop raising) terminates the running workers at once; their runs resume later.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generator, Iterator

from lrpilot.experiments.jobs import Execution, Job, Tick, available_cpus, execute_run
from lrpilot.experiments.study import import_plugins
from lrpilot.training.devices import resolve_device

__all__ = ["run_local", "default_workers"]


def default_workers(device: str, runs_per_gpu: int = 1) -> int:
    """One worker per CPU core, or ``runs_per_gpu`` per visible GPU when the runs go to CUDA.

    Workers are pinned to GPUs round-robin, so each GPU holds ``runs_per_gpu`` runs at once.
    """
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


def run_local(jobs: list[Job], execution: Execution, tick: Tick, *, device: str,
              imports: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run ``jobs`` in a spawn-context process pool, at most ``workers`` at a time; yield ``(name, outcome)``
    as they finish. ``device`` is the study's (it sets the default number of workers and the GPU pinning),
    ``imports`` its plugin modules (imported once per worker)."""
    if not jobs:
        return
    requested = execution.workers or default_workers(device, execution.runs_per_gpu)
    workers = min(requested, len(jobs))
    # torch threads from the workers asked for, not from the runs left: a run's numbers depend on its thread
    # count, so the last runs of a study (or a resumed one) must get as many threads as the first did
    threads = max(1, available_cpus() // requested)
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    pending = list(jobs)
    while pending:  # a new pool after a worker process died
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                   initargs=(threads, imports, _gpu_ids(device), counter))
        try:
            pending = yield from _drain(pool, pending, workers, tick)
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


def _drain(pool: ProcessPoolExecutor, jobs: list[Job], workers: int,
           tick: Tick) -> Generator[tuple[str, dict[str, Any]], None, list[Job]]:
    """Keep ``workers`` of ``jobs`` submitted to ``pool`` and yield ``(name, outcome)`` as they finish.
    Returns the jobs not yet submitted when the pool breaks (a worker died), for a new pool; else ``[]``."""
    queue = deque(jobs)
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
                return list(queue)
    return []


_DIED = {"ok": False, "error": "worker process died (killed, out of host memory, or a crash in native code) "
         "while this run or one beside it was running"}
