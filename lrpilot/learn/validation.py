"""The validation set of controller training: where recipes, teachers and checkpoints are chosen.

Claims about a learned controller rest on the held-out grid (``digits-mlp``, ``digits-cnn``,
``breast-cancer-mlp``, ``wine-mlp``, ``minilm-sentiment``: docs/controller.md), so nothing may be
chosen on it. Choices are made here instead, on tasks that share no data with the held-out grid nor
with the training distribution:

* ``iris-mlp``: scikit-learn's iris (a real dataset; no held-out task uses it);
* the synthetic families with data seeds reserved for validation (:data:`VALIDATION_DATA_SEEDS`; the
  training distribution draws data seeds below ``TaskDistribution.data_seeds``, 8 by default):
  ``teacher-mlp``, ``gmm-mlp`` (SGD) and ``seq-cnn`` (AdamW).

A :class:`ValidationSet` plays every task at each initial LR and budget (and control interval) with
a controller, and scores it by **regret**: the points of final test accuracy below the best
``constant`` run of the same task, budget, interval and seed over :data:`ORACLE_LRS` (a per-task oracle
LR, as the held-out grid's regret is a per-task oracle over its LRs). A diverged run scores 0. The
oracle is played once per set and cached. Runs use the chance-level divergence rule of ``lrpilot
compare`` (no growth rule), so a validation run ends as a ``compare`` run would.

With ``workers`` > 1 the runs are played in that many processes, one (task, budget, interval) block at a
time; every run is the same as in one process, so the scores do not depend on ``workers``. The controller
factory must then be picklable (``functools.partial(from_spec, "bold")``, not a lambda).

Example:
    >>> vs = ValidationSet(budgets=(6,), lrs=(1e-3,))
    >>> vs.evaluate(lambda: from_spec("bold"))["mean_regret"]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing as mp
import pickle
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from lrpilot.controller import Controller, from_spec
from lrpilot.envs.episodes import EvalCase, run_controller
from lrpilot.training.distribution import FINETUNE_SHAPES

__all__ = ["ValidationSet", "VALIDATION_TASKS", "VALIDATION_DATA_SEEDS", "FINETUNE_VALIDATION_TASK",
           "finetune_validation_task", "ORACLE_LRS", "regret_summary"]

VALIDATION_DATA_SEEDS = (100, 101, 102)
"""Data seeds of the synthetic validation tasks: never drawn in training (which uses 0..7)."""

VALIDATION_TASKS: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("iris-mlp", {}),
    ("teacher-mlp", {"data_seed": VALIDATION_DATA_SEEDS[0], "classes": 5, "n_train": 1024}),
    ("gmm-mlp", {"data_seed": VALIDATION_DATA_SEEDS[1], "classes": 4, "n_train": 1024, "noise": 0.2}),
    ("seq-cnn", {"data_seed": VALIDATION_DATA_SEEDS[2], "classes": 3, "n_train": 1024}),
)
"""(task, options) of the validation set; the options override the registered task's."""

def finetune_validation_task(shape: str = "transformer") -> tuple[str, Mapping[str, Any]]:
    """A pretrained transformer's fine-tune of ``shape`` (``TaskDistribution.finetune_shape``) as a validation task:
    ``seq-cnn``'s motif task as ``TaskDistribution``'s fine-tune draws of that shape are, at data seed 103 (neither
    drawn in training nor a held-out task's), with Adam."""
    options, batch_size = FINETUNE_SHAPES[shape]
    return ("seq-cnn", {"arch": "transformer", **{k: v for k, v in options.items() if k not in ("family", "arch")},
                        "seq_len": 16, "data_seed": 103, "batch_size": batch_size, "optimizer": "adam"})


FINETUNE_VALIDATION_TASK: tuple[str, Mapping[str, Any]] = finetune_validation_task()
"""The ``transformer`` shape's fine-tune validation task (:func:`finetune_validation_task`); added to the set by
recipes that draw fine-tunes (``finetune_prob`` > 0; a ``cliff`` recipe adds its own shape's instead), and not
otherwise, so the scores of other recipes are as before."""

_OPTIMIZERS = {"gmm-mlp": "sgd", "seq-cnn": "adamw"}
"""Optimisers other than the task's default (Adam), so that the set spans SGD and AdamW too."""

ORACLE_LRS = tuple(float(f"{10 ** (-5 + i / 2):.3g}") for i in range(9))
"""The constant LRs the oracle tries: 1e-5 to 1e-1, half a decade apart."""


@dataclass
class ValidationSet:
    """Validation tasks × initial LRs × budgets × intervals × session seeds (see the module docstring)."""

    lrs: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    """Initial LRs (each a misspecification of the oracle's for some task)."""
    budgets: tuple[int, ...] = (6, 20)
    """Epoch budgets."""
    intervals: tuple[str | None, ...] = (None,)
    """Control intervals (None: per epoch; ``"0.25"``: four decisions per epoch)."""
    seeds: tuple[int, ...] = (0, 1)
    """Session seeds (initial weights, data order)."""
    epoch_examples: int | None = 512
    """Examples per epoch of the synthetic tasks (iris has 90 training examples: all of them)."""
    tasks: tuple[tuple[str, Mapping[str, Any]], ...] = VALIDATION_TASKS
    """(task, options) pairs."""
    workers: int = 1
    """Processes that play the runs (one torch thread each); the scores do not depend on it."""
    task_lrs: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """Initial LRs of the tasks (by :attr:`labels`) that are played from other LRs than :attr:`lrs`: e.g. a
    fine-tune from the LRs fine-tunes start at, not from LRs where every controller ends at chance."""
    _oracle: dict[tuple[str, int, str | None, int], float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.task_lrs) - set(self.labels))
        if unknown:
            raise ValueError(f"ValidationSet.task_lrs: no task labelled {', '.join(unknown)}; "
                             f"the labels are {', '.join(self.labels)}")

    def _env(self, task: str, options: Mapping[str, Any], budget: int, interval: str | None, undo: bool) -> Any:
        from lrpilot.envs.lr_control import LRControlEnv

        overrides = dict(options)
        if task in _OPTIMIZERS:
            overrides.setdefault("optimizer", _OPTIMIZERS[task])
        examples = None if task == "iris-mlp" else self.epoch_examples
        return LRControlEnv(task=task, epochs=budget, task_options=overrides, epoch_examples=examples,
                            evaluate_test=True, divergence_growth_factor=None, interval=interval, undo=undo)

    @property
    def labels(self) -> list[str]:
        """What each task is scored and listed under: its name, or ``name[i]`` (its place among the tasks of
        that name) when the set holds the task more than once (with other options)."""
        names = [task for task, _ in self.tasks]
        return [name if names.count(name) == 1 else f"{name}[{names[:i].count(name)}]" for i, name in enumerate(names)]

    def _play_block(self, block: tuple[tuple[str, tuple[str, Mapping[str, Any]]], int, str | None],
                    make: Callable[[], Controller], lrs: Sequence[float] | None, undo: bool) -> list[dict[str, Any]]:
        """The runs of one task, budget and interval: every initial LR (``lrs``, or the task's) and seed."""
        (label, (task, options)), budget, interval = block
        env = self._env(task, options, budget, interval, undo)
        rows = []
        for lr, seed in itertools.product(lrs or self.task_lrs.get(label, self.lrs), self.seeds):
            record = run_controller(env, EvalCase(task, lr, seed), make())
            failed = record["test_acc"] is None or record["diverged"]
            rows.append({**record, "label": label, "budget": budget, "interval": interval,
                         "acc": 0.0 if failed else record["test_acc"]})
        return rows

    def _play(self, make: Callable[[], Controller], lrs: Sequence[float] | None = None) -> list[dict[str, Any]]:
        """Every run with a controller from ``make()``, from ``lrs`` (None: :attr:`lrs`, or a task's own)."""
        undo = make().may_undo
        blocks = list(itertools.product(zip(self.labels, self.tasks), self.budgets, self.intervals))
        play = functools.partial(self._play_block, make=make, lrs=None if lrs is None else tuple(lrs), undo=undo)
        if self.workers <= 1 or len(blocks) <= 1:
            return [row for block in blocks for row in play(block)]
        try:
            pickle.dumps(play)
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            raise ValueError("ValidationSet(workers > 1) needs a picklable controller factory "
                             "(functools.partial(from_spec, 'bold'), not a lambda)") from err
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(min(self.workers, len(blocks)), initializer=_one_thread) as pool:
            return [row for rows in pool.map(play, blocks, chunksize=1) for row in rows]

    def oracle(self) -> dict[tuple[str, int, str | None, int], float]:
        """The best final test accuracy of ``constant`` over :data:`ORACLE_LRS`, per (task label, budget,
        interval, seed; :attr:`labels`); played on the first call only."""
        if not self._oracle:
            for row in self._play(functools.partial(from_spec, "constant"), ORACLE_LRS):
                key = (row["label"], row["budget"], row["interval"], row["session_seed"])
                self._oracle[key] = max(self._oracle.get(key, 0.0), row["acc"])
        return self._oracle

    def evaluate(self, make: Callable[[], Controller]) -> dict[str, Any]:
        """Play every case with a fresh controller from ``make()``; mean regret (points), mean test accuracy
        (percent), divergences, and every run's row (with its ``regret``)."""
        oracle = self.oracle()
        rows = self._play(make)
        for row in rows:
            best = oracle[(row["label"], row["budget"], row["interval"], row["session_seed"])]
            row["regret"] = 100.0 * max(best - row["acc"], 0.0)
        per_task = {label: statistics.fmean(r["regret"] for r in rows if r["label"] == label) for label in self.labels}
        return {"n": len(rows), "mean_regret": statistics.fmean(r["regret"] for r in rows),
                "mean_test_acc": 100.0 * statistics.fmean(r["acc"] for r in rows),
                "diverged": sum(r["diverged"] for r in rows), "per_task_regret": per_task, "rows": rows}


def regret_summary(result: Mapping[str, Any]) -> str:
    """One line: mean regret, accuracy and divergences of an :meth:`ValidationSet.evaluate` result."""
    return (f"validation regret {result['mean_regret']:.2f} points (n={result['n']}), test acc "
            f"{result['mean_test_acc']:.2f}%, diverged {result['diverged']}")


def _one_thread() -> None:
    """A validation worker's initialiser: one torch thread (the workers are the parallelism)."""
    import torch

    torch.set_num_threads(1)
