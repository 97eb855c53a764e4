"""Running a study's runs as Ray tasks, on a cluster or on a local Ray instance.

Each run is one task reserving ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs; Ray
schedules them over the cluster and sets ``CUDA_VISIBLE_DEVICES`` per task, so a run
with device ``auto`` uses the GPU Ray gave it. Tasks call the same
:func:`~lrpilot.experiments.jobs.execute_run` as local workers and write into the
same result store, so on a multi-node cluster the study directory must be on storage
every node sees (NFS, a shared volume); a task's final metrics also travel back to the
driver, which writes them into its store if the worker's copy is not visible there.
Ray is an optional extra: ``pip install 'lrpilot[ray]'``.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

from lrpilot.experiments.jobs import Execution, Job, Tick, describe_error, execute_run
from lrpilot.training.loading import require

__all__ = ["run_ray"]


def run_ray(jobs: list[Job], execution: Execution, tick: Tick) -> Iterator[tuple[str, dict[str, Any]]]:
    """Submit every job as a Ray task and yield ``(name, outcome)`` as they finish."""
    if not jobs:
        return
    ray = require("ray", "ray")
    started = _connect(ray, execution)
    try:
        task = ray.remote(execute_run).options(
            num_cpus=execution.cpus_per_run,
            num_gpus=execution.gpus_per_run or (1.0 / execution.runs_per_gpu if execution.runs_per_gpu > 1 else 0.0),
            max_retries=0,  # a crashed run is recorded as failed and retried by the next invocation
        )
        threads = max(1, int(execution.cpus_per_run))
        pending = {task.remote(job, threads): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            tick([job.name for job in pending.values()])  # submitted, running or queued
            for ref in ready:
                job = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died, the node was lost...
                    outcome = {"ok": False, "error": describe_error(exc)}
                yield job.name, outcome
    finally:
        if started:
            ray.shutdown()


def _connect(ray: Any, execution: Execution) -> bool:
    """Join the cluster (or start a local instance); True when this call started Ray."""
    if ray.is_initialized():
        return False
    if execution.ray == "local":
        ray.init(num_cpus=execution.workers, include_dashboard=False, logging_level=logging.WARNING)
    else:
        ray.init(address=execution.ray, logging_level=logging.WARNING)
    return True
