"""Evaluate controllers on the same held-out episodes of an :class:`LRControlEnv`.

A learned policy and the ``rule`` baseline drive exactly the same episodes (same
task, initial LR and session seed, so the same initial weights and data order)
through :meth:`LRControlEnv.step_multiplier`; the comparison is paired. Episodes
end with the test split's loss and accuracy (``evaluate_test=True``); the test
split is never shown to a controller.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from lrpilot.controller.base import Controller, Undo, pretrained_flag
from lrpilot.envs.lr_control import LRControlEnv
from lrpilot.metrics import EpochMetrics

__all__ = ["EvalCase", "held_out_cases", "run_episode", "run_controller", "summarize", "paired", "HELD_OUT_SEED_BASE"]

HELD_OUT_SEED_BASE = 1_000_000_000
"""Evaluation session seeds start here; controller training draws seeds below it."""

Decide = Callable[[np.ndarray, EpochMetrics], "float | Undo"]
"""``decide(observation, last_metrics) -> LR multiplier`` (or :data:`~lrpilot.controller.base.UNDO`, in an
env built with ``undo=True``)."""


@dataclass(frozen=True)
class EvalCase:
    """One evaluation episode: what to train, from which LR, under which seed."""

    task: str
    """Task name."""
    initial_lr: float
    """Initial learning rate."""
    session_seed: int
    """Training-session seed (initial weights, data order)."""


def held_out_cases(tasks: Sequence[str], lr_range: tuple[float, float], n_lrs: int, n_seeds: int,
                   seed_base: int = HELD_OUT_SEED_BASE) -> list[EvalCase]:
    """Every task × ``n_lrs`` log-spaced initial LRs over ``lr_range`` × ``n_seeds`` held-out seeds."""
    if n_lrs < 1 or n_seeds < 1:
        raise ValueError(f"need n_lrs >= 1 and n_seeds >= 1, got {n_lrs} and {n_seeds}")
    lo, hi = math.log(lr_range[0]), math.log(lr_range[1])
    lrs = [math.exp(lo + (hi - lo) * i / (n_lrs - 1)) for i in range(n_lrs)] if n_lrs > 1 else [math.exp((lo + hi) / 2)]
    return [EvalCase(t, float(f"{lr:.6g}"), seed_base + s) for t in tasks for lr in lrs for s in range(n_seeds)]


def run_episode(env: LRControlEnv, case: EvalCase, decide: Decide,
                on_reset: Callable[[LRControlEnv], None] | None = None) -> dict[str, Any]:
    """Play one episode of ``case`` with ``decide``; a record of its outcome. ``on_reset(env)`` runs after
    the reset (the session, and so the number of intervals per epoch, exists then). The record has
    ``undos`` (how many intervals were undone) when the env offers undo."""
    obs, info = env.reset(options={"task": case.task, "initial_lr": case.initial_lr, "session_seed": case.session_seed})
    if on_reset is not None:
        on_reset(env)
    total, done, last = 0.0, False, info
    while not done:
        metrics = EpochMetrics.from_dict(last["metrics"])
        obs, reward, terminated, truncated, last = env.step_decision(decide(obs, metrics))
        total += reward
        done = terminated or truncated
    final = last["metrics"]
    test = last.get("test", {})
    return {
        **asdict(case), "return": total, "epochs": final["epoch"], "diverged": bool(last.get("diverged")),
        "final_val_loss": final["val_loss"], "final_val_acc": final["val_acc"], "final_lr": final["lr"],
        "test_loss": test.get("loss"), "test_acc": test.get("acc"),
        **({"undos": sum(m.undone for m in env.history)} if env.config.undo else {}),
    }


def run_controller(env: LRControlEnv, case: EvalCase, controller: Controller) -> dict[str, Any]:
    """Play one episode with a :class:`Controller` (reset to the case's LR, the env's budget and its
    decisions per epoch). A controller that may undo needs an env built with ``undo=True``; in another,
    a learned policy whose action set has undo has that action masked (``disable_undo``), and a
    controller that exists to undo (``+guard``) is refused."""
    if controller.may_undo and not env.config.undo:
        if not controller.undo_optional:
            raise ValueError(f"controller {controller.spec()!r} undoes; build the LRControlEnv with undo=True")
        controller.disable_undo()
    epochs = env.config.epochs
    if epochs is None:
        from lrpilot.training import get_task

        epochs = get_task(case.task).epochs

    def reset(played: LRControlEnv) -> None:
        controller.reset(case.initial_lr, epochs, played.intervals_per_epoch,
                         **pretrained_flag(played.session.task.starts_pretrained()))

    return run_episode(env, case, lambda obs, metrics: controller.act(metrics), on_reset=reset)


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean test accuracy (a diverged run counts as its accuracy, or 0 when it has none), mean return, counts."""
    accs = [r["test_acc"] if r["test_acc"] is not None else 0.0 for r in records]
    per_task: dict[str, Any] = {}
    for task in sorted({r["task"] for r in records}):
        rows = [r for r in records if r["task"] == task]
        per_task[task] = {"n": len(rows), "mean_test_acc": _mean(r["test_acc"] or 0.0 for r in rows),
                          "diverged": sum(r["diverged"] for r in rows)}
    return {
        "n": len(records), "mean_test_acc": _mean(accs), "mean_return": _mean(r["return"] for r in records),
        "diverged": sum(r["diverged"] for r in records), "per_task": per_task,
    }


def paired(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Counts of episodes where ``a``'s test accuracy is higher, equal or lower than ``b``'s (same cases)."""
    wins = ties = losses = 0
    for x, y in zip(a, b, strict=True):
        ax, ay = x["test_acc"] or 0.0, y["test_acc"] or 0.0
        wins, ties, losses = wins + (ax > ay), ties + (ax == ay), losses + (ax < ay)
    return {"better": wins, "equal": ties, "worse": losses}
