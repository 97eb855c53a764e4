"""Cheap, varied training tasks for learning a controller: generated data, its models and named tasks.

The distribution that draws training runs from these families is :mod:`lrpilot.training.distribution`.

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
``options["body_scale"]`` (default 1) makes the body *fragile* without changing what it computes
(:func:`~lrpilot.training.finetune.rescale_body`, MLPs and transformers): under Adam a raised LR then damages the
pretrained features sooner, as it does in a pretrained transformer whose weights are small, and the window of good
LRs moves down (a transformer fine-tune of depth 4 at ``body_scale=0.03`` is best near 1e-4 and at chance from
1e-3, as MiniLM is; docs/controller.md, session 20). What these fine-tunes do and
do not reproduce of a pretrained language model's is measured in docs/controller.md ("Synthetic fine-tunes:
MLPs do not carry the MiniLM miss, a small transformer does").

Any family takes label noise: ``options["noise"]`` is the fraction of *train* labels
replaced by a different random label (validation and test stay clean), which makes
over-fitting happen. Architectures (``options["arch"]``): ``mlp`` (``depth`` hidden
layers of ``width`` units) or ``cnn`` (``depth`` 3-wide conv layers of ``width`` channels;
1D with global max-pooling for sequences, 2D with a 2x2 max-pool for digit images); and
``transformer`` for ``seq`` (``depth`` encoder layers of ``width``; drawn only as a fine-tune). The
models hold no buffers and no dropout, so they train in a vectorised population too.

Registered names (:data:`SYNTHETIC_TASKS`, registered with the other built-ins by
:mod:`lrpilot.training.builtin`): ``teacher-mlp``, ``gmm-mlp``, ``noisy-digits-mlp``, ``seq-cnn``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from lrpilot.training.data import DataSplits, TensorSplit
from lrpilot.training.finetune import PRETRAIN_FAMILIES, check_finetune, pretrain_body, rescale_body
from lrpilot.training.task import Task
from lrpilot.training.transformer import SequenceTransformer

__all__ = ["FAMILIES", "TRAINING_FAMILIES", "PRETRAIN_FAMILIES", "pretrained_body", "ARCHS", "load_synthetic",
           "build_synthetic_model", "synthetic_task", "SYNTHETIC_TASKS"]

FAMILIES = ("digits", "teacher", "gmm", "seq")
"""Data families of :func:`load_synthetic`."""
TRAINING_FAMILIES = ("teacher", "gmm", "seq")
"""The families a :class:`~lrpilot.training.distribution.TaskDistribution` draws by default: every family but
``digits``, whose data (scikit-learn's digits) the held-out tasks ``digits-mlp`` and ``digits-cnn`` use."""
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
        rescale_body(model, float(opt["body_scale"]))
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
