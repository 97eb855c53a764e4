"""Spreading a population environment's groups over worker processes (``workers=`` > 1).

Each worker process owns a :class:`~lrpilot.envs.population.core.PopulationCore` over a
contiguous block of groups (and so of environment indices) and runs one torch thread;
the main process maps actions to multipliers, sends every worker its slice, and gathers
the results, so the workers train in parallel. Worker ``w`` draws from its own generator,
spawned from the reset seed (``numpy.random.SeedSequence(seed).spawn(workers)``): results
are reproducible for a given seed *and* number of workers.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
from typing import Any, Sequence

import numpy as np

from lrpilot.controller.base import Undo
from lrpilot.envs.population.core import (
    PopulationConfig,
    PopulationCore,
    StepResult,
    action_multipliers,
)
from lrpilot.metrics import EpochMetrics
from lrpilot.training.task import Task

__all__ = ["WorkerPool", "make_core"]


def make_core(config: PopulationConfig) -> "PopulationCore | WorkerPool":
    """An in-process core for ``workers=1``, a :class:`WorkerPool` otherwise."""
    return PopulationCore(config) if config.workers == 1 else WorkerPool(config)


def _worker(conn: Any, config: PopulationConfig, first_group: int, total_groups: int) -> None:
    """A worker's loop: answer ``(command, argument)`` messages until ``close``."""
    import torch

    torch.set_num_threads(1)  # one process per core; the groups are the parallelism
    core = PopulationCore(config, first_group=first_group, total_groups=total_groups)
    commands = {"reset": core.reset, "step": core.step_multipliers, "history": core.history,
                "tasks": lambda _: core.group_tasks()}
    while True:
        command, argument = conn.recv()
        if command == "close":
            conn.close()
            return
        try:
            conn.send(("ok", commands[command](argument)))
        except Exception as err:  # noqa: BLE001 - sent back and re-raised in the main process
            conn.send(("error", err))


class WorkerPool:
    """The :class:`PopulationCore` interface, served by ``config.workers`` processes."""

    def __init__(self, config: PopulationConfig) -> None:
        self.config = config
        self.encoder = config.env.observation_encoder()
        self.action_spec = config.env.action_spec
        sizes = [len(p) for p in np.array_split(np.arange(config.num_envs), config.groups)]
        blocks = np.array_split(np.arange(config.groups), config.workers)
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        context = mp.get_context(method)
        self._starts: list[int] = []
        self._conns, self._processes = [], []
        for block in blocks:
            members = sum(sizes[g] for g in block)
            self._starts.append(sum(sizes[: block[0]]))
            sub = dataclasses.replace(config, num_envs=members, groups=len(block), workers=1)
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, sub, int(block[0]), config.groups), daemon=True)
            process.start()
            child.close()
            self._conns.append(parent)
            self._processes.append(process)
        self._starts.append(config.num_envs)

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (for resource accounting)."""
        return [int(p.pid) for p in self._processes if p.pid is not None]

    def _ask(self, messages: Sequence[tuple[str, Any]], conns: Sequence[Any] | None = None) -> list[Any]:
        conns = self._conns if conns is None else conns
        try:
            for conn, message in zip(conns, messages):
                conn.send(message)
            answers = [conn.recv() for conn in conns]
        except (EOFError, OSError) as err:
            raise RuntimeError("a population worker process died (a script that creates workers must guard "
                               "its main code with `if __name__ == '__main__':`)") from err
        for status, value in answers:
            if status == "error":
                raise value
        return [value for _, value in answers]

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Reset every worker with its own seed spawned from ``seed``."""
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(len(self._conns))]
        answers = self._ask([("reset", s) for s in seeds])
        return np.concatenate([obs for obs, _ in answers]), [info for _, infos in answers for info in infos]

    def step(self, actions: Any) -> list[StepResult]:
        """Map actions to multipliers here, train in the workers."""
        return self.step_multipliers(action_multipliers(self.action_spec, actions, self.config.num_envs))

    def step_multipliers(self, multipliers: "Sequence[float | Undo]") -> list[StepResult]:
        """Every worker steps its slice of the members in parallel (:data:`UNDO` travels as itself)."""
        if len(multipliers) != self.config.num_envs:
            raise ValueError(f"need one multiplier per environment ({self.config.num_envs}), got {len(multipliers)}")
        values = [m if isinstance(m, Undo) else float(m) for m in multipliers]
        slices = [values[a:b] for a, b in zip(self._starts, self._starts[1:])]
        return [r for results in self._ask([("step", s) for s in slices]) for r in results]

    def history(self, env: int) -> list[EpochMetrics]:
        """The metrics of every epoch of member ``env``'s current episode."""
        if not 0 <= env < self.config.num_envs:
            raise ValueError(f"env must be in 0..{self.config.num_envs - 1}, got {env!r}")
        w = int(np.searchsorted(self._starts, env, side="right")) - 1
        return self._ask([("history", env - self._starts[w])], [self._conns[w]])[0]

    def group_tasks(self) -> list[Task]:
        """The task each group trains now."""
        return [task for tasks in self._ask([("tasks", None)] * len(self._conns)) for task in tasks]

    def close(self) -> None:
        """Stop the worker processes."""
        for conn, process in zip(self._conns, self._processes):
            if process.is_alive():
                try:
                    conn.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        self._conns, self._processes = [], []
