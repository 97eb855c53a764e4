"""The training distribution: varied training runs drawn from the families of :mod:`lrpilot.training.synthetic`.

:class:`TaskDistribution` draws, from an explicit ``np.random.Generator``, what a training run (or a population
group) trains: a :class:`TaskDraw` (task, initial LR, budget, epoch size). By default it draws no ``digits``,
the held-out tasks' data. With :attr:`TaskDistribution.finetune_prob` > 0 a share of the ``seq`` draws are
fine-tunes of a small pretrained transformer of one fixed shape (:attr:`TaskDistribution.finetune_shape`, one of
:data:`FINETUNE_SHAPES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrpilot.training.synthetic import ARCHS, DEFAULT_OPTIONS, FAMILIES, TRAINING_FAMILIES, synthetic_task
from lrpilot.training.task import Task

__all__ = ["TaskDistribution", "TaskDraw", "FINETUNE_DRAW", "FINETUNE_BATCH", "FINETUNE_DATA_SEEDS", "FINETUNE_SHAPES",
           "CLIFF_DRAW", "STEEP_DRAW", "FINETUNE_SUFFIX", "is_finetune_name"]

FINETUNE_DRAW: dict[str, Any] = {"family": "seq", "arch": "transformer", "width": 32, "depth": 2, "classes": 4,
                                 "n_train": 128, "pretrain": 8192}
"""The options of a fine-tune draw (:attr:`TaskDistribution.finetune_prob`): the ``seq`` motif task as a small
post-LayerNorm transformer pretrained on 8,192 sequences, fine-tuned with a fresh head on 128 (in batches of
:data:`FINETUNE_BATCH`). Smaller transformers learn too little in pretraining to behave as a fine-tune does
(width 16 or depth 1: their best LR is 3e-3 to 1e-2, and the shipped policy matches the rule on them;
``benchmarks/transformer_finetune.py``); the width and depth are fixed so that a worker pretrains few bodies."""
FINETUNE_BATCH = 16
"""Minibatch size of a fine-tune draw."""
CLIFF_DRAW: dict[str, Any] = {**FINETUNE_DRAW, "depth": 4, "n_train": 64}
"""The options of a ``cliff`` fine-tune draw: :data:`FINETUNE_DRAW` with depth 4, fine-tuned on 64 sequences in
batches of 8. It cannot be learned from scratch, so, as MiniLM does, it falls to chance from about 10x its best LR
where the ``transformer`` shape needs about 30x (5 epochs, data seed 52, 6 seeds: 89.3% at 1e-3, 74.9% at 3e-3,
28.5% at 1e-2; ``benchmarks/transformer_finetune.py``, docs/controller.md session 17)."""
STEEP_DRAW: dict[str, Any] = {**CLIFF_DRAW, "body_scale": 0.03}
"""The options of a ``steep`` fine-tune draw: :data:`CLIFF_DRAW` with a fragile body (``body_scale`` 0.03). Its
window of good LRs is MiniLM's: best near 1e-4, at chance from 1e-3 (5 epochs, data seed 52, 4 seeds: 82.1% at 1e-4,
64.3% at 3.16e-4, 26.1% at 1e-3), and, as on MiniLM, the shipped policy ends below ``rule`` from 1e-4 at interval
0.25 (77.2% against 81.2%; ``benchmarks/transformer_finetune.py``, docs/controller.md session 20)."""
FINETUNE_SHAPES: dict[str, tuple[dict[str, Any], int]] = {"transformer": (FINETUNE_DRAW, FINETUNE_BATCH),
                                                          "cliff": (CLIFF_DRAW, 8), "steep": (STEEP_DRAW, 8)}
"""The fine-tune shapes a distribution may draw (:attr:`TaskDistribution.finetune_shape`): (options, batch size)."""
FINETUNE_DATA_SEEDS = 2
"""Fine-tune draws use data seeds below this (and below ``data_seeds``): each is a body a worker pretrains once
(about 17 s of a core), so few of them keep the pretraining a small part of training."""

FINETUNE_SUFFIX = "-finetune"
"""The end of a fine-tune draw's task name (``seq-transformer-finetune``, ``noisy-seq-transformer-finetune``)."""


def is_finetune_name(name: str) -> bool:
    """Whether a drawn task's name (a population step's ``info["task"]``) is that of a fine-tune draw."""
    return name.endswith(FINETUNE_SUFFIX)


def _drawn_weight_decay(task: Task) -> Task:
    """A drawn task with its optimiser's settings: AdamW draws train with weight decay 0.01."""
    return task.with_overrides(weight_decay=0.01) if task.optimizer == "adamw" else task


@dataclass(frozen=True)
class TaskDraw:
    """One draw of :class:`TaskDistribution`: what a training run (or a population group) trains."""

    task: Task
    """The task (data family and its options, architecture, optimiser, batch size) at ``lr`` for ``epochs``."""
    lr: float
    """Initial learning rate."""
    epochs: int
    """Epoch budget."""
    epoch_examples: int
    """Training examples per epoch."""


def _check_range(name: str, value: Any, low: float, high: float, integer: bool = False) -> tuple[Any, Any]:
    kind = int if integer else (int, float)
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, kind) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"TaskDistribution: {name} must be a pair (lo, hi) with {low} <= lo <= hi <= {high}, "
                         f"got {value!r}")
    return value[0], value[1]


@dataclass(frozen=True)
class TaskDistribution:
    """Draws varied training runs from an explicit ``np.random.Generator``.

    :meth:`draw_task` draws what members of a population share (data family, its size
    and noise, architecture, optimiser, batch and epoch size); :meth:`draw_lr` and
    :meth:`draw_epochs` what each run draws for itself; :meth:`draw` all of it.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> draw = TaskDistribution().draw(rng)
        >>> session = TrainingSession(draw.task, seed=0, epoch_examples=draw.epoch_examples)  # doctest: +SKIP
    """

    families: tuple[str, ...] = TRAINING_FAMILIES
    """Data families, drawn uniformly (default: not ``digits``, the held-out tasks' data; ask for it by name)."""
    archs: tuple[str, ...] = ARCHS
    """Architectures, drawn uniformly (``cnn`` only for ``seq`` and ``digits``; others get ``mlp``)."""
    optimizers: tuple[str, ...] = ("adam", "adamw", "sgd")
    """Optimisers, drawn uniformly (``sgd`` has momentum 0.9; ``adamw`` weight decay 0.01)."""
    lr_range: tuple[float, float] = (1e-5, 1e-1)
    """Initial LRs are drawn log-uniformly from this range."""
    epochs_range: tuple[int, int] = (4, 30)
    """Epoch budgets are drawn uniformly from this range (inclusive)."""
    epoch_examples: tuple[int, ...] = (256, 512, 1024)
    """Examples per epoch, drawn uniformly (capped at the train split's size)."""
    batch_sizes: tuple[int, ...] = (32, 64, 128)
    """Minibatch sizes, drawn uniformly."""
    width_range: tuple[int, int] = (16, 128)
    """Hidden width (or channels), drawn log-uniformly (inclusive)."""
    cnn_width_range: tuple[int, int] | None = None
    """Channels of ``cnn`` draws, log-uniform (inclusive) from the same random number as an MLP's width (so
    setting it changes no other draw); None: :attr:`width_range`. A convolution layer costs about a dense
    layer of the same width per position and tap, so a narrower CNN range keeps the families' costs closer."""
    seq_len: int = 32
    """Sequence length of ``seq`` draws (the ``seq_len`` data option)."""
    depth_range: tuple[int, int] = (1, 3)
    """Hidden layers (or conv layers), drawn uniformly (inclusive)."""
    noise_range: tuple[float, float] = (0.1, 0.4)
    """Label noise of a noisy draw, drawn uniformly."""
    noise_prob: float = 0.3
    """Probability that a draw has label noise at all."""
    data_seeds: int = 8
    """Generated datasets use one of this many data seeds (a fixed, finite set of datasets)."""
    intervals: tuple[float, ...] = (1.0,)
    """Control intervals (fractions of an epoch), drawn uniformly per task by :meth:`draw_interval`; with a
    single value nothing is drawn (so draws of distributions without intervals are unchanged)."""
    finetune_prob: float = 0.0
    """Probability that a draw of the ``seq`` family is instead a fine-tune of a pretrained transformer
    (:attr:`finetune_shape`; its optimiser, label noise and data seed drawn as for any task, the data seed below
    :data:`FINETUNE_DATA_SEEDS`). At 0 nothing more is drawn, so the draws of other distributions are unchanged."""
    finetune_shape: str = "transformer"
    """Which fine-tune a fine-tune draw is (:data:`FINETUNE_SHAPES`): ``transformer`` (:data:`FINETUNE_DRAW`),
    ``cliff`` (:data:`CLIFF_DRAW`, which falls to chance from 10x its best LR) or ``steep`` (:data:`STEEP_DRAW`: the
    cliff with a fragile body, best near 1e-4 and at chance from 1e-3, as MiniLM)."""
    finetune_lr_range: tuple[float, float] | None = None
    """Initial LRs of fine-tune draws, log-uniform (None: :attr:`lr_range`, as for any draw). Fine-tunes of a
    pretrained model are started near its good LRs in practice (BERT's authors tried 2e-5 to 5e-5); drawn from
    the whole :attr:`lr_range`, half of the ``steep`` shape's episodes start past its cliff, where every
    controller probed ends near chance. The same random number is used either way, so no other draw changes."""
    val_examples: int | None = None
    """Validation examples of every generated draw, fine-tunes included (the ``n_val`` data option; None: each
    draw's own, 512; ``digits`` keeps its split). Each decision evaluates every member and twin on them, most of a
    fine-tune's decision and a large part of any other's (docs/performance.md, session 33): fewer make training
    cheaper and the validation loss, which the observation and the twin reward read, noisier. Draws nothing, so
    every draw is otherwise the one the distribution without it makes."""

    def __post_init__(self) -> None:
        for name, values, allowed in (("families", self.families, FAMILIES), ("archs", self.archs, ARCHS),
                                      ("optimizers", self.optimizers, ("adam", "adamw", "sgd"))):
            if not isinstance(values, tuple) or not values or not set(values) <= set(allowed):
                raise ValueError(f"TaskDistribution: {name} must be a non-empty tuple from {allowed}, got {values!r}")
        _check_range("lr_range", self.lr_range, 1e-12, 1e3)
        if self.lr_range[0] <= 0:
            raise ValueError(f"TaskDistribution: lr_range must be > 0, got {self.lr_range!r}")
        if self.finetune_lr_range is not None:
            _check_range("finetune_lr_range", self.finetune_lr_range, 1e-12, 1e3)
        _check_range("epochs_range", self.epochs_range, 2, 10**6, integer=True)
        _check_range("width_range", self.width_range, 1, 10**5, integer=True)
        if self.cnn_width_range is not None:
            _check_range("cnn_width_range", self.cnn_width_range, 1, 10**5, integer=True)
        if isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int) or not 3 <= self.seq_len <= 10**5:
            raise ValueError(f"TaskDistribution: seq_len must be an integer in [3, 100000], got {self.seq_len!r}")
        _check_range("depth_range", self.depth_range, 1, 64, integer=True)
        _check_range("noise_range", self.noise_range, 0.0, 0.95)
        for name, values in (("epoch_examples", self.epoch_examples), ("batch_sizes", self.batch_sizes)):
            if not isinstance(values, tuple) or not values or not all(isinstance(v, int) and v >= 1 for v in values):
                raise ValueError(f"TaskDistribution: {name} must be a non-empty tuple of integers >= 1, got {values!r}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ValueError(f"TaskDistribution: noise_prob must be in [0, 1], got {self.noise_prob!r}")
        if not isinstance(self.data_seeds, int) or self.data_seeds < 1:
            raise ValueError(f"TaskDistribution: data_seeds must be an integer >= 1, got {self.data_seeds!r}")
        if isinstance(self.finetune_prob, bool) or not isinstance(self.finetune_prob, (int, float)) or not (
                0.0 <= self.finetune_prob <= 1.0):
            raise ValueError(f"TaskDistribution: finetune_prob must be in [0, 1], got {self.finetune_prob!r}")
        if self.finetune_prob and "seq" not in self.families:
            raise ValueError("TaskDistribution: finetune_prob draws fine-tunes of the seq family, so families must "
                             f"include 'seq', got {self.families!r}")
        if self.finetune_shape not in FINETUNE_SHAPES:
            raise ValueError(f"TaskDistribution: finetune_shape must be one of {tuple(FINETUNE_SHAPES)}, "
                             f"got {self.finetune_shape!r}")
        if self.val_examples is not None and (isinstance(self.val_examples, bool) or not isinstance(
                self.val_examples, int) or not 16 <= self.val_examples <= 100_000):
            raise ValueError("TaskDistribution: val_examples must be an integer in [16, 100000] (or absent), "
                             f"got {self.val_examples!r}")
        if not isinstance(self.intervals, tuple) or not self.intervals or not all(
                not isinstance(v, bool) and isinstance(v, (int, float)) and 0 < v <= 1 for v in self.intervals):
            raise ValueError(f"TaskDistribution: intervals must be a non-empty tuple of fractions of an epoch in "
                             f"(0, 1], got {self.intervals!r}")

    def draw_task(self, rng: np.random.Generator) -> tuple[Task, int]:
        """The shared part of a draw: a task (at its default LR and budget) and its epoch size."""
        family = self.families[int(rng.integers(len(self.families)))]
        arch = self.archs[int(rng.integers(len(self.archs)))]
        arch = arch if family in ("seq", "digits") else "mlp"
        lo, hi = self.cnn_width_range if arch == "cnn" and self.cnn_width_range is not None else self.width_range
        width = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        depth = int(rng.integers(self.depth_range[0], self.depth_range[1] + 1))
        noise = float(rng.uniform(*self.noise_range)) if rng.uniform() < self.noise_prob else 0.0
        optimizer = self.optimizers[int(rng.integers(len(self.optimizers)))]
        classes = int(rng.integers(2, 11)) if family != "seq" else int(rng.integers(2, 7))
        options = {"family": family, "arch": arch, "width": width, "depth": depth, "noise": round(noise, 3),
                   "data_seed": int(rng.integers(self.data_seeds)), "dim": int(rng.integers(8, 33)),
                   "classes": 10 if family == "digits" else classes}
        if family == "seq" and self.seq_len != DEFAULT_OPTIONS["seq_len"]:
            options["seq_len"] = self.seq_len
        if self.val_examples is not None and family != "digits":
            options["n_val"] = self.val_examples
        name = f"{'noisy-' if noise else ''}{family}-{arch}"
        task = synthetic_task(name, "drawn from TaskDistribution", optimizer=optimizer,
                              batch_size=self.batch_sizes[int(rng.integers(len(self.batch_sizes)))], **options)
        task = _drawn_weight_decay(task)
        examples = self.epoch_examples[int(rng.integers(len(self.epoch_examples)))]
        n_train = 1077 if family == "digits" else int(task.options["n_train"])
        if family == "seq" and self.finetune_prob and rng.uniform() < self.finetune_prob:
            tune = self._finetune(rng, optimizer, noise)
            return tune, int(tune.options["n_train"])  # the whole (small) train split every epoch
        return task, min(examples, n_train)

    def _finetune(self, rng: np.random.Generator, optimizer: str, noise: float) -> Task:
        """A fine-tune draw (:attr:`finetune_shape`) with the drawn optimiser and label noise."""
        shape, batch_size = FINETUNE_SHAPES[self.finetune_shape]
        options = {**shape, "noise": round(noise, 3), "seq_len": self.seq_len,
                   "data_seed": int(rng.integers(min(FINETUNE_DATA_SEEDS, self.data_seeds)))}
        if self.val_examples is not None:
            options["n_val"] = self.val_examples
        name = f"{'noisy-' if noise else ''}seq-transformer{FINETUNE_SUFFIX}"
        task = synthetic_task(name, "drawn from TaskDistribution", optimizer=optimizer, batch_size=batch_size, **options)
        return _drawn_weight_decay(task)

    def draw_lr(self, rng: np.random.Generator, task: Task | None = None) -> float:
        """An initial LR, log-uniform over :attr:`lr_range` (over :attr:`finetune_lr_range`, when set, if ``task``
        is a fine-tune draw)."""
        tune = task is not None and self.finetune_lr_range is not None and bool(task.options.get("pretrain"))
        lo, hi = self.finetune_lr_range if tune else self.lr_range
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    def draw_epochs(self, rng: np.random.Generator) -> int:
        """An epoch budget, uniform over :attr:`epochs_range` (inclusive)."""
        return int(rng.integers(self.epochs_range[0], self.epochs_range[1] + 1))

    def draw_interval(self, rng: np.random.Generator) -> float | None:
        """A control interval from :attr:`intervals` (None: one epoch); draws nothing when there is one."""
        value = self.intervals[int(rng.integers(len(self.intervals)))] if len(self.intervals) > 1 else self.intervals[0]
        return None if float(value) == 1.0 else float(value)

    def draw(self, rng: np.random.Generator) -> TaskDraw:
        """A complete draw: the task with its initial LR and budget set, and its epoch size."""
        task, examples = self.draw_task(rng)
        lr, epochs = self.draw_lr(rng, task), self.draw_epochs(rng)
        return TaskDraw(task.with_overrides(lr=lr, epochs=epochs), lr, epochs, examples)
