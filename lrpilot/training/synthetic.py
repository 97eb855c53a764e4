"""Cheap, varied training tasks for learning a controller: generated data and a task distribution.

Data families (each generator is seeded by ``options["data_seed"]`` alone, so the fixed
train / val / test splits never depend on a run's seed):

* ``digits``: scikit-learn's bundled 8x8 digits (real images, 1,077 / 360 / 360).
* ``teacher``: Gaussian inputs labelled by a random two-layer tanh MLP (the teacher);
  the teacher's logits are centred per class so that every class occurs.
* ``gmm``: a Gaussian mixture: each class is a few unit-variance blobs around random centres.
* ``seq``: random token sequences (one-hot, channels first) in which one of ``classes``
  short motifs is planted at a random position; the label is the motif (a 1D conv finds it).

A ``teacher`` or ``gmm`` MLP task, or a ``seq`` task as a transformer (``options["arch"] = "transformer"``:
:mod:`lrpilot.training.transformer`), can be a **fine-tune** (``options["pretrain"]`` > 0, the size of a
*source* set): its model starts from a body pretrained on a related source task and a fresh head, as a
pretrained BERT does (:func:`pretrained_body`). The source is ``pretrain`` other examples from the same
generator: ``teacher``'s are labelled by the same teacher, ``gmm``'s by blob (``classes`` × 3 classes on
the same centres, a refinement of the target's classes), ``seq``'s carry the same motifs. The body is
pretrained once per process and task (:mod:`lrpilot.training.finetune`: Adam, LR 1e-3, batch 64, 20 epochs,
seeded by the data seed alone), so every run of a task starts from the same body and only the head depends
on the run's seed. With a small target set (``n_train``) the pretrained body is worth keeping.
``options["body_scale"]`` (default 1; MLPs only) makes the body *fragile* without changing what it computes
(:func:`~lrpilot.training.finetune.rescale_body`): under Adam a raised LR then damages the pretrained
features sooner, as it does in a pretrained transformer whose weights are small. What these fine-tunes do and
do not reproduce of a pretrained language model's is measured in docs/controller.md ("Synthetic fine-tunes:
MLPs do not carry the MiniLM miss, a small transformer does").

Any family takes label noise: ``options["noise"]`` is the fraction of *train* labels
replaced by a different random label (validation and test stay clean), which makes
over-fitting happen. Architectures (``options["arch"]``): ``mlp`` (``depth`` hidden
layers of ``width`` units) or ``cnn`` (``depth`` 3-wide conv layers of ``width`` channels;
1D with global max-pooling for sequences, 2D with a 2x2 max-pool for digit images); and, named
only (no distribution draws it), ``transformer`` for ``seq`` (``depth`` encoder layers of ``width``). The
models hold no buffers and no dropout, so they train in a vectorised population too.

Registered names (:data:`SYNTHETIC_TASKS`, registered with the other built-ins by
:mod:`lrpilot.training.builtin`): ``teacher-mlp``, ``gmm-mlp``, ``noisy-digits-mlp``, ``seq-cnn``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lrpilot.training.data import DataSplits, TensorSplit
from lrpilot.training.finetune import PRETRAIN_FAMILIES, check_finetune, pretrain_body, rescale_body
from lrpilot.training.task import Task
from lrpilot.training.transformer import SequenceTransformer

__all__ = ["FAMILIES", "TRAINING_FAMILIES", "PRETRAIN_FAMILIES", "pretrained_body", "ARCHS", "load_synthetic",
           "build_synthetic_model", "synthetic_task", "SYNTHETIC_TASKS", "TaskDistribution", "TaskDraw",
           "FINETUNE_DRAW", "FINETUNE_BATCH", "FINETUNE_DATA_SEEDS"]

FAMILIES = ("digits", "teacher", "gmm", "seq")
"""Data families of :func:`load_synthetic`."""
TRAINING_FAMILIES = ("teacher", "gmm", "seq")
"""The families a :class:`TaskDistribution` draws by default: every family but ``digits``, whose data
(scikit-learn's digits) the held-out tasks ``digits-mlp`` and ``digits-cnn`` use."""
ARCHS = ("mlp", "cnn")
"""Model families of :func:`build_synthetic_model`."""

DEFAULT_OPTIONS: dict[str, Any] = {
    "family": "teacher", "arch": "mlp", "width": 64, "depth": 2, "dim": 16, "classes": 10, "noise": 0.0,
    "data_seed": 0, "n_train": 2048, "n_val": 512, "n_test": 512, "seq_len": 32, "vocab": 8, "pretrain": 0,
    "body_scale": 1.0,
}
"""Every option a synthetic task understands (``with_overrides`` can change any of them)."""


# -- data ------------------------------------------------------------------------------
def load_synthetic(task: Task, data_dir: str | None = None) -> DataSplits:
    """The fixed splits of ``task.options``' family (``data_dir`` is ignored: nothing is downloaded)."""
    opt = {**DEFAULT_OPTIONS, **task.options}
    family = opt["family"]
    if family not in FAMILIES:
        raise ValueError(f"synthetic family must be one of {', '.join(FAMILIES)}, got {family!r}")
    check_finetune(opt)
    noise = float(opt["noise"])
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise!r}")
    if family == "digits":
        from lrpilot.training.digits import load_digits

        data = load_digits(Task(task.name, load_digits, task.build_model, options={"image": opt["arch"] == "cnn"}))
    else:
        rng = np.random.default_rng(int(opt["data_seed"]))
        sizes = (int(opt["n_train"]), int(opt["n_val"]), int(opt["n_test"]))
        x, y = {"teacher": _teacher, "gmm": _gmm, "seq": _seq}[family](rng, sum(sizes), opt)
        full = TensorSplit(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)))
        cut = np.cumsum(sizes)
        parts = [torch.arange(a, b) for a, b in zip((0, *cut[:2]), cut)]
        data = DataSplits(full.subset(parts[0]), full.subset(parts[1]), full.subset(parts[2]), int(opt["classes"]))
    if noise > 0:
        data.train = _flip_labels(data.train, noise, data.num_classes, int(opt["data_seed"]))
    data.meta = {"family": family, "noise": noise}
    return data


def _source_rng(opt: dict[str, Any]) -> np.random.Generator:
    """What draws a fine-tune's source examples, once its generator has drawn what source and target share
    (the teacher, the blob centres, the motifs) from the data seed's: a stream of its own, also seeded by the
    data seed alone, so no source example is a target one."""
    return np.random.default_rng([int(opt["data_seed"]), 2])


def _teacher(rng: np.random.Generator, n: int, opt: dict[str, Any],
             source: bool = False) -> tuple[np.ndarray, np.ndarray]:
    dim, classes, hidden = int(opt["dim"]), int(opt["classes"]), 64
    w1 = rng.normal(0.0, 1.0 / math.sqrt(dim), (dim, hidden))
    w2 = rng.normal(0.0, 1.0 / math.sqrt(hidden), (hidden, classes))
    if source:  # the same teacher, other inputs
        rng = _source_rng(opt)
    x = rng.normal(0.0, 1.0, (n, dim))
    logits = np.tanh(x @ w1 * 2.0) @ w2
    logits -= logits.mean(axis=0)  # centred per class: every class gets examples
    return x, logits.argmax(axis=1)


def _gmm(rng: np.random.Generator, n: int, opt: dict[str, Any],
         source: bool = False) -> tuple[np.ndarray, np.ndarray]:
    dim, classes, blobs = int(opt["dim"]), int(opt["classes"]), 3
    centres = rng.normal(0.0, 0.6, (classes, blobs, dim))
    if source:  # the same blobs, each its own class, other points
        rng = _source_rng(opt)
    y = rng.integers(0, classes, n)
    k = rng.integers(0, blobs, n)
    return centres[y, k] + rng.normal(0.0, 1.0, (n, dim)), y * blobs + k if source else y


def _seq(rng: np.random.Generator, n: int, opt: dict[str, Any],
         source: bool = False) -> tuple[np.ndarray, np.ndarray]:
    vocab, length, classes, motif = int(opt["vocab"]), int(opt["seq_len"]), int(opt["classes"]), 3
    if length < motif or vocab < 2:
        raise ValueError(f"seq needs seq_len >= {motif} and vocab >= 2, got seq_len={length}, vocab={vocab}")
    motifs = rng.integers(0, vocab, (classes, motif))
    if source:  # the same motifs, other sequences
        rng = _source_rng(opt)
    tokens = rng.integers(0, vocab, (n, length))
    y = rng.integers(0, classes, n)
    start = rng.integers(0, length - motif + 1, n)
    for j in range(motif):
        tokens[np.arange(n), start + j] = motifs[y, j]
    one_hot = np.eye(vocab, dtype=np.float32)[tokens]  # (n, length, vocab)
    return one_hot.transpose(0, 2, 1), y


def _flip_labels(split: TensorSplit, noise: float, classes: int, seed: int) -> TensorSplit:
    """Replace a fraction ``noise`` of labels with a different random label (fixed by ``seed``)."""
    rng = np.random.default_rng([seed, 1])
    labels = split.labels.clone()
    n = len(labels)
    flip = torch.from_numpy(rng.permutation(n)[: int(round(noise * n))])
    shift = torch.from_numpy(rng.integers(1, max(2, classes), len(flip)))
    labels[flip] = (labels[flip] + shift) % classes
    return TensorSplit(split.inputs, labels)


# -- fine-tunes (lrpilot.training.finetune) -------------------------------------------------
def pretrained_body(options: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The body (every parameter but the output layer's) of the task's model pretrained on its source set
    (:func:`lrpilot.training.finetune.pretrain_body`: once per process, independent of the run's seed)."""
    opt = {**DEFAULT_OPTIONS, **options}
    examples = check_finetune(opt)
    classes = int(opt["classes"]) * (3 if opt["family"] == "gmm" else 1)

    def source() -> tuple[torch.Tensor, torch.Tensor]:
        generate = {"teacher": _teacher, "gmm": _gmm, "seq": _seq}[opt["family"]]
        x, y = generate(np.random.default_rng(int(opt["data_seed"])), examples, opt, source=True)
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))

    def build(inputs: torch.Tensor, labels: torch.Tensor) -> nn.Module:
        task = Task("source", load_synthetic, build_synthetic_model,
                    options={**opt, "classes": classes, "pretrain": 0, "body_scale": 1.0})
        one = TensorSplit(inputs[:1], labels[:1])
        return build_synthetic_model(task, DataSplits(TensorSplit(inputs, labels), one, one, classes))

    return pretrain_body(opt, source, build)


# -- models ------------------------------------------------------------------------------
class GlobalMaxPool1d(nn.Module):
    """Max over the last (sequence) dimension: ``(N, C, L) -> (N, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=-1)


def build_synthetic_model(task: Task, data: DataSplits) -> nn.Module:
    """An MLP, a small CNN or (``seq`` only) a small transformer sized by ``task.options`` (``width``, ``depth``)
    for ``data``'s inputs."""
    opt = {**DEFAULT_OPTIONS, **task.options}
    arch, width, depth = opt["arch"], int(opt["width"]), int(opt["depth"])
    if arch not in (*ARCHS, "transformer"):
        raise ValueError(f"arch must be one of {', '.join(ARCHS)} or transformer, got {arch!r}")
    if width < 1 or depth < 1:
        raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
    shape = tuple(data.train.inputs.shape[1:])  # type: ignore[union-attr]
    classes = data.num_classes
    if arch == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(shape)
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU()]
            fan_in = width
        return _finetuned(nn.Sequential(*layers, nn.Linear(fan_in, classes)), opt)
    if arch == "transformer":
        if opt["family"] != "seq":
            raise ValueError(f"arch 'transformer' reads token sequences (family 'seq'), got family {opt['family']!r}")
        return _finetuned(SequenceTransformer(int(shape[0]), int(shape[1]), width, depth, classes), opt)
    if len(shape) == 2:  # (channels, length)
        convs: list[nn.Module] = []
        for i in range(depth):
            convs += [nn.Conv1d(shape[0] if i == 0 else width, width, 3, padding=1), nn.ReLU()]
        return nn.Sequential(*convs, GlobalMaxPool1d(), nn.Linear(width, classes))
    if len(shape) == 3:  # (channels, height, width)
        convs = []
        for i in range(depth):
            convs += [nn.Conv2d(shape[0] if i == 0 else width, width, 3, padding=1), nn.ReLU()]
        pooled = width * (shape[1] // 2) * (shape[2] // 2)
        return nn.Sequential(*convs, nn.MaxPool2d(2), nn.Flatten(), nn.Linear(pooled, classes))
    raise ValueError(f"cnn needs inputs of shape (C, L) or (C, H, W), got {shape}")


def _finetuned(model: nn.Module, opt: dict[str, Any]) -> nn.Module:
    """``model`` (built under the run's seed), with the pretrained body of a fine-tune and its fresh head."""
    if check_finetune(opt):
        model.load_state_dict(pretrained_body(opt), strict=False)
        rescale_body(model, float(opt["body_scale"]))  # 1 (nothing to do) unless an MLP's
    return model


# -- named tasks --------------------------------------------------------------------------
def synthetic_task(name: str, description: str = "", *, optimizer: str = "adam", lr: float = 1e-3,
                   batch_size: int = 64, epochs: int = 20, **options: Any) -> Task:
    """A synthetic :class:`Task`; ``options`` override :data:`DEFAULT_OPTIONS`."""
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ValueError(f"unknown synthetic option(s) {sorted(unknown)}; allowed: {', '.join(DEFAULT_OPTIONS)}")
    return Task(name=name, load_data=load_synthetic, build_model=build_synthetic_model, description=description,
                optimizer=optimizer, lr=lr, batch_size=batch_size, epochs=epochs,
                options={**DEFAULT_OPTIONS, **options})


SYNTHETIC_TASKS: tuple[Task, ...] = (
    synthetic_task("teacher-mlp", "MLP on Gaussian inputs labelled by a random teacher MLP (generated, offline)",
                   family="teacher"),
    synthetic_task("gmm-mlp", "MLP on a 10-class Gaussian mixture (generated, offline)", family="gmm"),
    synthetic_task("noisy-digits-mlp", "MLP on scikit-learn's digits with 30% of train labels flipped (offline)",
                   family="digits", noise=0.3, width=128),
    synthetic_task("seq-cnn", "1D CNN finding which of 4 motifs is planted in a token sequence (generated, offline)",
                   family="seq", arch="cnn", width=32, classes=4),
)
"""The registered synthetic tasks."""


# -- the distribution ----------------------------------------------------------------------
FINETUNE_DRAW: dict[str, Any] = {"family": "seq", "arch": "transformer", "width": 32, "depth": 2, "classes": 4,
                                 "n_train": 128, "pretrain": 8192}
"""The options of a fine-tune draw (:attr:`TaskDistribution.finetune_prob`): the ``seq`` motif task as a small
post-LayerNorm transformer pretrained on 8,192 sequences, fine-tuned with a fresh head on 128 (in batches of
:data:`FINETUNE_BATCH`). Smaller transformers learn too little in pretraining to behave as a fine-tune does
(width 16 or depth 1: their best LR is 3e-3 to 1e-2, and the shipped policy matches the rule on them;
``benchmarks/transformer_finetune.py``); the width and depth are fixed so that a worker pretrains few bodies."""
FINETUNE_BATCH = 16
"""Minibatch size of a fine-tune draw."""
FINETUNE_DATA_SEEDS = 2
"""Fine-tune draws use data seeds below this (and below ``data_seeds``): each is a body a worker pretrains once
(about 17 s of a core), so few of them keep the pretraining a small part of training."""


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
    (:data:`FINETUNE_DRAW`; its optimiser, label noise and data seed drawn as for any task, the data seed below
    :data:`FINETUNE_DATA_SEEDS`). At 0 nothing more is drawn, so the draws of other distributions are unchanged."""

    def __post_init__(self) -> None:
        for name, values, allowed in (("families", self.families, FAMILIES), ("archs", self.archs, ARCHS),
                                      ("optimizers", self.optimizers, ("adam", "adamw", "sgd"))):
            if not isinstance(values, tuple) or not values or not set(values) <= set(allowed):
                raise ValueError(f"TaskDistribution: {name} must be a non-empty tuple from {allowed}, got {values!r}")
        _check_range("lr_range", self.lr_range, 1e-12, 1e3)
        if self.lr_range[0] <= 0:
            raise ValueError(f"TaskDistribution: lr_range must be > 0, got {self.lr_range!r}")
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
        name = f"{'noisy-' if noise else ''}{family}-{arch}"
        task = synthetic_task(name, "drawn from TaskDistribution", optimizer=optimizer,
                              batch_size=self.batch_sizes[int(rng.integers(len(self.batch_sizes)))], **options)
        task = _drawn_weight_decay(task)
        examples = self.epoch_examples[int(rng.integers(len(self.epoch_examples)))]
        n_train = 1077 if family == "digits" else int(task.options["n_train"])
        if family == "seq" and self.finetune_prob and rng.uniform() < self.finetune_prob:
            return self._finetune(rng, optimizer, noise), int(FINETUNE_DRAW["n_train"])
        return task, min(examples, n_train)

    def _finetune(self, rng: np.random.Generator, optimizer: str, noise: float) -> Task:
        """A fine-tune draw (:data:`FINETUNE_DRAW`) with the drawn optimiser and label noise."""
        options = {**FINETUNE_DRAW, "noise": round(noise, 3), "seq_len": self.seq_len,
                   "data_seed": int(rng.integers(min(FINETUNE_DATA_SEEDS, self.data_seeds)))}
        task = synthetic_task(f"{'noisy-' if noise else ''}seq-transformer-finetune", "drawn from TaskDistribution",
                              optimizer=optimizer, batch_size=FINETUNE_BATCH, **options)
        return _drawn_weight_decay(task)

    def draw_lr(self, rng: np.random.Generator) -> float:
        """An initial LR, log-uniform over :attr:`lr_range`."""
        lo, hi = self.lr_range
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
        lr, epochs = self.draw_lr(rng), self.draw_epochs(rng)
        return TaskDraw(task.with_overrides(lr=lr, epochs=epochs), lr, epochs, examples)
