"""A prototype: does a small pretrained post-LayerNorm transformer fine-tune carry MiniLM's (c) miss?

Issue #16, bar (c): on ``minilm-sentiment`` at LR 1e-4 the shipped ``policy:default`` ends 3.1 points below
``rule`` (2 seeds), half of it from its first raise (``benchmarks/minilm_first_decision.py``). Synthetic MLP
fine-tunes do not show it (``benchmarks/finetune_family.py``). This asks the same of a fine-tune closer to
MiniLM, before anything is built into the package: a transformer encoder (post-LayerNorm, as BERT's; no
dropout), pretrained on 8,192 sequences of the ``seq`` family's motif task, then fine-tuned with a fresh head on
128 others (batch 16) for a few epochs with Adam.

The source sequences use the target's motifs but other random tokens; the body is pretrained once per process
(Adam, LR 1e-3, 20 epochs, batch 64, seeded by the data seed) and only the head depends on the run's seed.
Prints the constant-LR sweep (1e-5 to 1e-1, half a decade apart) and each controller at ``--lrs``, mean test
accuracy over ``--seeds``. Data seed 52: neither training (0 to 7), validation (100 to 102) nor a held-out task.

    PYTHONPATH=benchmarks OMP_NUM_THREADS=1 .venv/bin/python benchmarks/transformer_finetune.py [--epochs 5]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import multiprocessing as mp
import time
from collections import defaultdict
from statistics import fmean

import numpy as np
import torch
from torch import nn

from lrpilot.training.data import DataSplits, TensorSplit
from lrpilot.training.task import Task

ORACLE_LRS = tuple(float(f"{10 ** (-5 + i / 2):.3g}") for i in range(9))
VOCAB, LENGTH, CLASSES, MOTIF, DATA_SEED = 8, 16, 4, 3, 52
SOURCE, TRAIN, VAL, TEST = 8192, 128, 512, 512
_BODY: dict[tuple, dict[str, torch.Tensor]] = {}


def sequences(rng: np.random.Generator, motifs: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` one-hot token sequences, channels first, each with one class's motif planted; and the labels."""
    tokens = rng.integers(0, VOCAB, (n, LENGTH))
    y = rng.integers(0, CLASSES, n)
    start = rng.integers(0, LENGTH - MOTIF + 1, n)
    for j in range(MOTIF):
        tokens[np.arange(n), start + j] = motifs[y, j]
    x = np.eye(VOCAB, dtype=np.float32)[tokens].transpose(0, 2, 1)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


def motifs() -> np.ndarray:
    return np.random.default_rng(DATA_SEED).integers(0, VOCAB, (CLASSES, MOTIF))


def load(task: Task, data_dir: str | None = None) -> DataSplits:
    x, y = sequences(np.random.default_rng([DATA_SEED, 1]), motifs(), TRAIN + VAL + TEST)
    cut = (TRAIN, TRAIN + VAL)
    split = [TensorSplit(x[a:b], y[a:b]) for a, b in ((0, cut[0]), cut, (cut[1], len(y)))]
    return DataSplits(*split, CLASSES)


class TinyTransformer(nn.Module):
    """Per-position token embedding and learned positions, ``depth`` post-LayerNorm encoder layers, mean pool."""

    def __init__(self, width: int, depth: int, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(VOCAB, width)
        self.pos = nn.Parameter(0.02 * torch.randn(LENGTH, width))
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True,
                                                               norm_first=False) for _ in range(depth))
        self.head = nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.transpose(1, 2)) + self.pos
        for layer in self.layers:
            h = layer(h)
        return self.head(h.mean(dim=1))


def build(task: Task, data: DataSplits) -> nn.Module:
    width, depth = int(task.options["width"]), int(task.options["depth"])
    model = TinyTransformer(width, depth)  # under the run's seed: the head is the run's
    key = (width, depth)
    if key not in _BODY:
        inputs, labels = sequences(np.random.default_rng([DATA_SEED, 2]), motifs(), SOURCE)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(DATA_SEED)
            source = TinyTransformer(width, depth)
            optimizer = torch.optim.Adam(source.parameters(), lr=1e-3)
            for _ in range(20):
                for batch in torch.randperm(SOURCE).split(64):
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(source(inputs[batch]), labels[batch]).backward()
                    optimizer.step()
        _BODY[key] = {k: v.detach().clone() for k, v in source.state_dict().items() if not k.startswith("head.")}
    model.load_state_dict(_BODY[key], strict=False)
    return model


def task(width: int, depth: int, epochs: int) -> Task:
    return Task("transformer-finetune", load, build, description="prototype", optimizer="adam", lr=1e-4,
                batch_size=16, epochs=epochs, options={"width": width, "depth": depth})


def play(spec: str, lr: float, seed: int, width: int, depth: int, epochs: int,
         hold_first: bool = False) -> tuple[str, float, int, float]:
    """One run, as ``lrpilot compare`` plays it (the chance-level divergence rule; a diverged run scores 0);
    ``hold_first`` replaces the controller's first decision by x1 (a diagnosis)."""
    torch.set_num_threads(1)
    from lrpilot.controller import from_spec
    from lrpilot.training import TrainingSession

    controller = from_spec(spec)
    controller.reset(lr, epochs, 1)
    session = TrainingSession(task(width, depth, epochs).with_overrides(lr=lr), seed=seed, device="cpu")
    for epoch in range(epochs):
        metrics = session.run_epoch()
        if metrics.diverged:
            return spec, lr, seed, 0.0
        decision = controller.act(metrics)
        session.scale_lr(1.0 if hold_first and epoch == 0 else decision)
    return spec, lr, seed, session.evaluate("test")["acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--lrs", default="1e-4,3e-4,1e-3")
    parser.add_argument("--controllers", default="rule,bold,policy:default")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hold-first", action="store_true", help="replace each controller's first decision by x1")
    parser.add_argument("--json", help="write every run's accuracy here")
    args = parser.parse_args()
    lrs = [float(x) for x in args.lrs.split(",")]
    jobs = [("constant", lr, s) for lr in ORACLE_LRS for s in range(args.seeds)]
    jobs += [(spec, lr, s) for spec in args.controllers.split(",") for lr in lrs for s in range(args.seeds)]
    start = time.perf_counter()
    run = functools.partial(play, width=args.width, depth=args.depth, epochs=args.epochs, hold_first=args.hold_first)
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = pool.starmap(run, jobs, chunksize=1)
    cells: dict[tuple[str, float], list[float]] = defaultdict(list)
    for spec, lr, _, acc in results:
        cells[(spec, lr)].append(acc)
    mean = {key: round(100 * fmean(v), 1) for key, v in cells.items()}
    print(f"transformer fine-tune (width {args.width}, depth {args.depth}, {args.epochs} epochs, {args.seeds} seeds)")
    print("constant: " + "  ".join(f"{lr:g}: {mean[('constant', lr)]}" for lr in ORACLE_LRS))
    for spec, lr in itertools.product(args.controllers.split(","), lrs):
        print(f"{spec:16s} {lr:g}: {mean[(spec, lr)]}")
    print(f"{time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump([list(r) for r in results], out)


if __name__ == "__main__":
    main()
