"""`Population`: many small models of one shape trained in lockstep in one process.

Every member is its own training run (own seed, own initial weights, own data order,
own learning rate, own optimiser state and step count, own metrics and divergence),
but all members share the task's architecture, optimiser family and data, so one
``torch.vmap`` over ``torch.func.functional_call`` runs them together. The parameters
of member ``i`` are row ``i`` of one flat ``[P, N]`` tensor; the optimisers
(:mod:`lrpilot.training.vector_optim`) update all rows at once.

A member trained here matches a :class:`~lrpilot.training.TrainingSession` of the same
task, seed and LR (same initial weights, same minibatches, same update arithmetic) to
float rounding, and its :class:`~lrpilot.metrics.EpochMetrics` mean the same, with two
documented differences: ``seconds`` is the epoch's wall time divided by the members it
trained, and a member whose loss becomes non-finite finishes the epoch (harmlessly, on
its own row) instead of stopping early, so its ``grad_norm`` averages every minibatch.

The training layer knows nothing of controllers: whoever drives it calls
:meth:`Population.run_epoch` (all members or a subset), :meth:`Population.scale_lr`
between epochs and :meth:`Population.reset_members` to start members afresh.

**Control intervals** (``interval=0.25``, ``"50steps"``; :class:`~lrpilot.training.intervals.Interval`):
:meth:`Population.run_interval` trains each member up to its next interval boundary, as
``TrainingSession.run_interval`` does (the same boundaries, since all members share the batch
count; each member's epoch order is drawn when its epoch begins and kept to its end). Members
need not be at the same point of their epochs (a member restarted later is at another interval):
members whose intervals have the same batch sizes train in one pass, each at its own offset in its
own epoch order, so a step takes one pass per distinct interval length (at most three).

**Undo** (``undo=True``): every interval starts by keeping a copy of each trained member's slice
(its row of the parameters and of the optimiser state, its LR, data-order generator, epoch order
and position); :meth:`Population.undo` restores the slices of the members it names, marks their last
interval ``undone`` and cuts their LR, as ``TrainingSession.undo`` does; the other members are not
touched. The copy costs one row of parameters and optimiser state per member (for Adam, three times
the member's weights).

Example:
    >>> pop = Population("teacher-mlp", seeds=[0, 1, 2], lrs=[1e-3, 3e-3, 1e-2])
    >>> metrics = pop.run_epoch()             # one EpochMetrics per member
    >>> pop.scale_lr([0, 2], [0.5, 0.5])      # halve members 0 and 2
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch.func import functional_call

from lrpilot.metrics import EpochMetrics
from lrpilot.training.batched_mlp import mlp_forward, mlp_plan
from lrpilot.training.data import DataSplits
from lrpilot.training.devices import resolve_device
from lrpilot.training.divergence import DivergenceRule, first_val_loss, resolve_rule
from lrpilot.training.intervals import Interval
from lrpilot.training.loading import load_splits
from lrpilot.training.population_init import Initializer, check_model, cross_entropy, seeded_model
from lrpilot.training.snapshots import UNDO_LR_FACTOR, check_lr_factor
from lrpilot.training.task import Task, get_task
from lrpilot.training.vector_optim import VECTOR_OPTIMIZERS, init_state, optimizer_step

__all__ = ["Population", "cross_entropy"]

_IDENTITY = DataSplits.__dataclass_fields__["train_transform"].default

VMAP_EVAL_CHUNK = 64
"""Examples per evaluation chunk for models run under ``torch.vmap`` (CNNs). Their activations over a whole
512-example batch of every member leave the CPU's caches: a 1D CNN group of 32 members evaluates about 3.8x
faster in chunks of 64 on a quiet machine and about 4x faster on a loaded one (benchmarks/cnn_eval_chunk.py,
docs/performance.md). The chunk does not depend on the population's size, so a member's results do not depend
on how many members share its population."""


class Population:
    """``len(seeds)`` members of ``task`` trained in lockstep; member ``i`` starts from ``seeds[i]``, ``lrs[i]``.

    ``lr_bounds`` are relative to each member's initial LR: :meth:`scale_lr` keeps member
    ``i`` within ``[lrs[i] * lr_bounds[0], lrs[i] * lr_bounds[1]]``. Each member's epochs are
    flagged ``diverged`` by ``divergence`` (a :class:`~lrpilot.training.divergence.DivergenceRule`,
    its first validation loss being that member's), exactly as a
    :class:`~lrpilot.training.TrainingSession` with the same rule flags them: by default a
    non-finite loss or weight, or a validation loss above ``10 * log(num_classes)``.

    Example:
        >>> pop = Population("seq-cnn", seeds=range(8), lrs=np.geomspace(1e-4, 1e-1, 8))
        >>> for _ in range(3):
        ...     metrics = pop.run_epoch()
    """

    def __init__(self, task: Task | str, seeds: Sequence[int], lrs: Sequence[float] | None = None, *,
                 device: str | torch.device = "cpu", data: DataSplits | None = None, data_dir: str | None = None,
                 epoch_examples: int | None = None, lr_bounds: tuple[float, float] = (0.0, math.inf),
                 divergence: DivergenceRule | None = None, divergence_factor: float | None = None,
                 interval: Interval | str | float | None = None, undo: bool = False) -> None:
        self.task = get_task(task)
        self.task.validate()
        if self.task.optimizer not in VECTOR_OPTIMIZERS:
            raise ValueError(f"task {self.task.name!r}: a population trains with {', '.join(VECTOR_OPTIMIZERS)}, "
                             f"got optimizer {self.task.optimizer!r}")
        seeds = list(seeds)
        if not seeds:
            raise ValueError("a population needs at least one member (seeds is empty)")
        lrs = [self.task.lr] * len(seeds) if lrs is None else [float(x) for x in lrs]
        if len(lrs) != len(seeds):
            raise ValueError(f"need one LR per seed, got {len(lrs)} LRs for {len(seeds)} seeds")
        if epoch_examples is not None and (isinstance(epoch_examples, bool) or epoch_examples < 1):
            raise ValueError(f"epoch_examples must be an integer >= 1 or None, got {epoch_examples!r}")
        lo, hi = lr_bounds
        if not 0.0 <= lo <= 1.0 <= hi:
            raise ValueError(f"lr_bounds must be (low, high) with 0 <= low <= 1 <= high, got {lr_bounds!r}")
        self.divergence = resolve_rule(divergence, divergence_factor, "Population")
        self.device = resolve_device(device)
        self.data = self._prepare_data(data if data is not None else load_splits(self.task, data_dir))
        self.epoch_examples, self.lr_bounds = epoch_examples, (float(lo), float(hi))
        if not isinstance(undo, bool):
            raise ValueError(f"undo must be True or False, got {undo!r}")
        self.interval = Interval.parse(interval)
        self.examples_per_epoch = min(len(self.data.train), epoch_examples or len(self.data.train))
        self.batches_per_epoch = math.ceil(self.examples_per_epoch / self.task.batch_size)
        self._bounds = self.interval.boundaries(self.batches_per_epoch)
        self.intervals_per_epoch = len(self._bounds)
        """Decisions per epoch (1 with the default interval), the same for every member."""
        self.keeps_snapshots = undo
        """With ``undo=True``, every interval starts by keeping a copy of each trained member's slice."""
        template = seeded_model(self.task, self.data, 0)
        check_model(self.task, template)
        self._initial = Initializer(self.task, self.data)
        self._names = [name for name, _ in template.named_parameters()]
        self._shapes = [tuple(p.shape) for _, p in template.named_parameters()]
        self._sizes = [p.numel() for _, p in template.named_parameters()]
        self._mlp = mlp_plan(template)  # plain MLPs run as batched matrix products, others under vmap
        self._base = template.to("meta")
        size = len(seeds)
        self.params = torch.zeros(size, sum(self._sizes), device=self.device)
        self.state = init_state(self.task.optimizer, self.params)
        self.lr = torch.zeros(size, dtype=torch.float64, device=self.device)
        self.min_lr, self.max_lr = torch.zeros_like(self.lr), torch.zeros_like(self.lr)
        self.seeds = [0] * size
        self.epochs = np.zeros(size, dtype=np.int64)
        self.history: list[list[EpochMetrics]] = [[] for _ in range(size)]
        self._generators = [torch.Generator() for _ in range(size)]
        self._orders: list[torch.Tensor | None] = [None] * size  # each member's epoch order, once it began
        self._positions = [0] * size  # batches of its current epoch each member has trained
        self._snapshots: list[dict[str, Any] | None] = [None] * size
        self.reset_members(range(size), seeds, lrs)

    def _prepare_data(self, data: DataSplits) -> DataSplits:
        if not isinstance(data.train.inputs, torch.Tensor):
            raise ValueError(f"task {self.task.name!r}: a population needs tensor inputs, got keyword inputs")
        if data.train_transform is not _IDENTITY or data.eval_transform is not _IDENTITY:
            raise ValueError(f"task {self.task.name!r}: a population trains on data without transforms "
                             "(no augmentation); this task's data has one")
        return data.to(self.device)

    # -- members ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of members."""
        return int(self.params.shape[0])

    def reset_members(self, members: Sequence[int], seeds: Sequence[int], lrs: Sequence[float]) -> None:
        """Start ``members`` afresh: weights from ``seeds``, zero optimiser state, LR ``lrs``, no history."""
        members, seeds, lrs = list(members), list(seeds), list(lrs)
        if not len(members) == len(seeds) == len(lrs):
            raise ValueError(f"need as many seeds and LRs as members, got {len(members)}, {len(seeds)}, {len(lrs)}")
        for i, seed, lr in zip(members, seeds, lrs):  # validate everything before changing anything
            if not 0 <= i < self.size:
                raise ValueError(f"member must be in 0..{self.size - 1}, got {i}")
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
            if not (math.isfinite(lr) and lr > 0):
                raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        for i, seed, lr in zip(members, seeds, lrs):
            self.params[i] = self._initial(int(seed)).to(self.device)
            for tensor in self.state.values():
                tensor[i] = 0
            self.lr[i], self.min_lr[i], self.max_lr[i] = lr, lr * self.lr_bounds[0], lr * self.lr_bounds[1]
            self.seeds[i] = int(seed)
            self._generators[i].manual_seed(int(seed))
            self.epochs[i] = 0
            self.history[i] = []
            self._orders[i], self._positions[i], self._snapshots[i] = None, 0, None

    def scale_lr(self, members: Sequence[int], factors: Sequence[float]) -> np.ndarray:
        """Multiply each member's LR by its factor (clamped to its bounds); returns the new LRs."""
        idx = torch.as_tensor(list(members), dtype=torch.long, device=self.device)
        factor = torch.as_tensor(np.asarray(factors, dtype=np.float64), device=self.device)
        if factor.shape != idx.shape or not bool(torch.isfinite(factor).all() and (factor > 0).all()):
            raise ValueError(f"factors must be one finite number > 0 per member, got {list(factors)!r}")
        new = torch.minimum(torch.maximum(self.lr[idx] * factor, self.min_lr[idx]), self.max_lr[idx])
        self.lr[idx] = new
        return new.cpu().numpy()

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s weights as a ``state_dict`` that the task's model loads."""
        parts = self.params[member].split(self._sizes)
        return {name: p.view(shape).clone() for name, shape, p in zip(self._names, self._shapes, parts)}

    # -- training -------------------------------------------------------------------------
    def run_epoch(self, members: Sequence[int] | None = None) -> list[EpochMetrics]:
        """Train ``members`` (default: all) one epoch together, validate each; one EpochMetrics per member
        (populations with the default interval of one epoch; others call :meth:`run_interval`)."""
        if self.intervals_per_epoch != 1:
            raise RuntimeError(f"this population decides {self.intervals_per_epoch} times per epoch "
                               f"(interval {self.interval}); call run_interval()")
        return self.run_interval(members)

    def run_interval(self, members: Sequence[int] | None = None) -> list[EpochMetrics]:
        """Train ``members`` (default: all) each up to its next interval boundary, validate each; one
        EpochMetrics per member, in the order of ``members``. With more than one interval per epoch a
        record's ``epoch`` is the 1-based interval index and ``elapsed_epochs`` the epochs spent."""
        idx = list(range(self.size)) if members is None else [int(i) for i in members]
        if not idx or len(set(idx)) != len(idx) or not all(0 <= i < self.size for i in idx):
            raise ValueError(f"members must be distinct indices in 0..{self.size - 1}, got {idx}")
        if self.keeps_snapshots:
            self._take_snapshots(idx)
        spans = {i: self._span(i) for i in idx}
        passes: dict[tuple[int, ...], list[int]] = {}
        for i in idx:  # members whose intervals have the same batch sizes train together
            passes.setdefault(self._batch_sizes(*spans[i]), []).append(i)
        out: dict[int, EpochMetrics] = {}
        for together in passes.values():
            out.update(zip(together, self._run_pass(together, spans)))
        for i in idx:
            stop = spans[i][1]
            self._positions[i] = stop if stop < self.batches_per_epoch else 0
            if self._positions[i] == 0:
                self._orders[i] = None
        return [out[i] for i in idx]

    def _span(self, member: int) -> tuple[int, int]:
        """The batches (first, stop) of ``member``'s next interval; draws its epoch order when the epoch begins."""
        if self._orders[member] is None:
            order = torch.randperm(len(self.data.train), generator=self._generators[member])
            self._orders[member] = order[: self.examples_per_epoch]
        first = self._positions[member]
        return first, next(b for b in self._bounds if b > first)

    def _batch_sizes(self, first: int, stop: int) -> tuple[int, ...]:
        batch, n = self.task.batch_size, self.examples_per_epoch
        return tuple(min(batch, n - b * batch) for b in range(first, stop))

    def _run_pass(self, idx: list[int], spans: dict[int, tuple[int, int]]) -> list[EpochMetrics]:
        """One vectorised pass: members ``idx``, whose intervals have the same batch sizes, each at its offset."""
        start = time.perf_counter()
        rows = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        whole = len(idx) == self.size and idx == sorted(idx)
        params = self.params if whole else self.params[rows]
        state = self.state if whole else {k: v[rows] for k, v in self.state.items()}
        batch = self.task.batch_size
        order = torch.stack([self._orders[i][spans[i][0] * batch: spans[i][1] * batch] for i in idx])  # type: ignore[index]
        losses, norms = self._train_pass(params, state, self.lr[rows], order.to(self.device))
        val_loss, val_acc = self._evaluate(params, "val")
        if not whole:
            self.params[rows] = params
            for key, value in state.items():
                self.state[key][rows] = value
        weights_ok = torch.isfinite(params).all(dim=1).cpu().numpy()
        seconds = (time.perf_counter() - start) / len(idx)
        return self._record(idx, losses, norms, val_loss, val_acc, weights_ok, seconds)

    def _views(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = params.split(self._sizes, dim=1)
        return {name: p.view(-1, *shape) for name, shape, p in zip(self._names, self._shapes, parts)}

    def _forward(self, params: torch.Tensor, inputs: torch.Tensor, shared: bool) -> torch.Tensor:
        """Logits ``[k, B, C]``: each member on its own batch (``inputs [k, B, ...]``) or on a shared one."""
        if self._mlp is not None:
            return mlp_forward(self._mlp, self._views(params), inputs, shared)

        def member(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(self._base, p, (x,), tie_weights=False)

        return torch.vmap(member, in_dims=(0, None if shared else 0))(self._views(params), inputs)

    def _train_pass(self, params: torch.Tensor, state: dict[str, torch.Tensor], lr: torch.Tensor,
                    order: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Minibatch losses and gradient norms, ``[batches, k]`` arrays; updates ``params`` and ``state``.
        ``order`` ``[k, n]``: the examples of each member's interval, in order."""
        train, batch = self.data.train, self.task.batch_size
        n = order.shape[1]
        inputs, labels = train.inputs[order], train.labels[order]  # [k, n, ...]: every member's interval, in order
        losses, norms = [], []
        params.requires_grad_(True)
        try:
            for begin in range(0, n, batch):
                logits = self._forward(params, inputs[:, begin:begin + batch], shared=False)
                loss = cross_entropy(logits, labels[:, begin:begin + batch])
                (grads,) = torch.autograd.grad(loss.sum(), params)
                optimizer_step(self.task.optimizer, params.data, grads, state, lr, self.task.weight_decay)
                losses.append(loss.detach())
                norms.append(torch.linalg.vector_norm(grads, dim=1))
        finally:
            params.requires_grad_(False)
        return torch.stack(losses).double().cpu().numpy(), torch.stack(norms).double().cpu().numpy()

    @torch.inference_mode()
    def _evaluate(self, params: torch.Tensor, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss and accuracy of every row of ``params`` on ``split``."""
        data = self.data.split(split)
        loss_sum = torch.zeros(params.shape[0], dtype=torch.float64, device=self.device)
        correct = torch.zeros(params.shape[0], dtype=torch.int64, device=self.device)
        chunk = self.task.eval_batch_size if self._mlp is not None else min(self.task.eval_batch_size, VMAP_EVAL_CHUNK)
        for begin in range(0, len(data), chunk):
            inputs = data.inputs[begin:begin + chunk]  # type: ignore[index]
            labels = data.labels[begin:begin + chunk]
            logits = self._forward(params, inputs, shared=True)
            loss_sum += cross_entropy(logits, labels.expand(params.shape[0], -1)).double() * len(labels)
            correct += (logits.argmax(dim=-1) == labels).sum(dim=1)
        return (loss_sum / len(data)).cpu().numpy(), (correct.double() / len(data)).cpu().numpy()

    def evaluate(self, split: str = "test", members: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Loss and accuracy of ``members`` (default: all) on ``split``; no training, no randomness."""
        idx = list(range(self.size)) if members is None else [int(i) for i in members]
        loss, acc = self._evaluate(self.params[torch.as_tensor(idx, dtype=torch.long)], split)
        return [{"loss": float(v) if math.isfinite(v) else math.nan, "acc": float(a)} for v, a in zip(loss, acc)]

    def _record(self, idx: list[int], losses: np.ndarray, norms: np.ndarray, val_loss: np.ndarray,
                val_acc: np.ndarray, weights_ok: np.ndarray, seconds: float) -> list[EpochMetrics]:
        """The EpochMetrics of members ``idx`` (the columns of the pass's arrays), appended to their histories."""
        finite = np.isfinite(losses).all(axis=0)
        mean, std = losses.mean(axis=0), losses.std(axis=0) if len(losses) > 1 else np.zeros(len(idx))
        grad_norm = norms.mean(axis=0)
        out = []
        for j, member in enumerate(idx):
            ok = bool(finite[j])
            val = float(val_loss[j]) if ok and math.isfinite(val_loss[j]) else math.nan
            history = self.history[member]
            diverged = self.divergence.diverged(val, self.data.num_classes, finite=ok and bool(weights_ok[j]),
                                                first_val_loss=first_val_loss(history))
            self.epochs[member] += 1
            per_epoch = self.intervals_per_epoch
            metrics = EpochMetrics(
                epoch=int(self.epochs[member]), lr=float(self.lr[member]),
                train_loss=float(mean[j]) if ok else math.nan, train_loss_std=float(std[j]) if ok else 0.0,
                val_loss=val, val_acc=float(val_acc[j]) if ok else None, grad_norm=float(grad_norm[j]),
                seconds=seconds, diverged=bool(diverged),
                elapsed_epochs=int(self.epochs[member]) / per_epoch if per_epoch > 1 else None,
            )
            history.append(metrics)
            out.append(metrics)
        return out

    # -- undo -----------------------------------------------------------------------------
    def can_undo(self, member: int) -> bool:
        """True when ``member``'s last interval can be undone (``undo=True`` and not undone already)."""
        return self._snapshots[member] is not None

    def undo(self, members: Sequence[int], lr_factor: float | Sequence[float] = UNDO_LR_FACTOR) -> list[EpochMetrics]:
        """Rewind each of ``members`` to the start of its last interval and multiply its LR by ``lr_factor``
        (one number for all, or one per member).

        Each member's slice (weights, optimiser state, LR, data-order generator, epoch order and
        position) is restored, so its retry sees the same batches; the other members are not touched.
        The interval still counts (``epochs`` does not go back) and stays in the member's history,
        marked ``undone``. Needs ``undo=True``; one undo per interval. Returns the undone records.
        """
        idx = [int(i) for i in members]
        for i in idx:  # check everything before changing anything
            if not 0 <= i < self.size:
                raise ValueError(f"member must be in 0..{self.size - 1}, got {i}")
            if self._snapshots[i] is None:
                reason = "this population keeps no snapshots (undo=False)" if not self.keeps_snapshots else \
                    "no interval has run since its last undo (or its start)"
                raise RuntimeError(f"nothing to undo for member {i}: {reason}")
        factors = [lr_factor] * len(idx) if isinstance(lr_factor, (int, float)) else list(lr_factor)
        if len(factors) != len(idx):
            raise ValueError(f"need one lr_factor per member ({len(idx)}), got {len(factors)}")
        factors = [check_lr_factor(f) for f in factors]
        for i in idx:
            snap, self._snapshots[i] = self._snapshots[i], None
            assert snap is not None  # checked above
            self.params[i] = snap["params"]
            for key, value in snap["state"].items():
                self.state[key][i] = value
            self.lr[i] = snap["lr"]
            self._generators[i].set_state(snap["generator"])
            self._orders[i], self._positions[i] = snap["order"], snap["position"]
            self.history[i][-1] = dataclasses.replace(self.history[i][-1], undone=True)
        if idx:
            self.scale_lr(idx, factors)
        return [self.history[i][-1] for i in idx]

    def _take_snapshots(self, idx: list[int]) -> None:
        """Keep each member's slice as it is at the start of its interval (see :meth:`undo`)."""
        rows = torch.as_tensor(idx, dtype=torch.long, device=self.device)
        params, state = self.params[rows].clone(), {k: v[rows].clone() for k, v in self.state.items()}
        for j, i in enumerate(idx):
            self._snapshots[i] = {
                "params": params[j], "state": {k: v[j] for k, v in state.items()}, "lr": self.lr[i].clone(),
                "generator": self._generators[i].get_state(), "order": self._orders[i],  # orders are never modified
                "position": self._positions[i],
            }

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Weights, optimiser state, LRs, seeds, data-order generators, epochs and histories (and, with
        intervals, each member's epoch order and position; with undo, the snapshots)."""
        extra: dict[str, Any] = {}
        if self.intervals_per_epoch > 1:
            extra["orders"], extra["positions"] = list(self._orders), list(self._positions)
        if self.keeps_snapshots:
            extra["snapshots"] = list(self._snapshots)
        return {
            "task": self.task.name, "params": self.params.clone(),
            "state": {k: v.clone() for k, v in self.state.items()},
            "lr": self.lr.clone(), "min_lr": self.min_lr.clone(), "max_lr": self.max_lr.clone(),
            "seeds": list(self.seeds), "epochs": [int(e) for e in self.epochs],
            "generators": [g.get_state() for g in self._generators],
            "history": [[m.to_dict() for m in h] for h in self.history],
            **extra,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` of a population of the same task and size."""
        if state.get("task") != self.task.name or tuple(state["params"].shape) != tuple(self.params.shape):
            raise ValueError(f"state is for task {state.get('task')!r} with params {tuple(state['params'].shape)}, "
                             f"this population trains {self.task.name!r} with {tuple(self.params.shape)}")
        self.params.copy_(state["params"])
        for key, value in state["state"].items():
            self.state[key].copy_(value)
        for key in ("lr", "min_lr", "max_lr"):
            getattr(self, key).copy_(state[key])
        self.seeds = [int(s) for s in state["seeds"]]
        self.epochs = np.asarray(state["epochs"], dtype=np.int64)
        for generator, gen_state in zip(self._generators, state["generators"]):
            generator.set_state(gen_state)
        self.history = [[EpochMetrics.from_dict(m) for m in h] for h in state["history"]]
        self._orders = list(state.get("orders", [None] * self.size))  # absent: every member at an epoch boundary
        self._positions = [int(p) for p in state.get("positions", [0] * self.size)]
        self._snapshots = list(state.get("snapshots", [None] * self.size)) if self.keeps_snapshots else [None] * self.size
