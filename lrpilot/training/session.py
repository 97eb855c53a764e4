"""`TrainingSession`: one training run, advanced one control interval (by default one epoch) at a time.

The session owns the model, the optimiser, the data on the device and every random
generator the run uses (initialisation, data order, augmentation, dropout), so its
``state_dict`` resumes a run exactly, mid-epoch included. It knows nothing of controllers:
whoever drives it calls :meth:`run_interval` (or :meth:`run_epoch`) and, between intervals,
:meth:`scale_lr` or :meth:`undo`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

from lrpilot.metrics import EpochMetrics, weight_change
from lrpilot.training.data import DataSplits, batches_of, epoch_order, fixed_split_indices, sequence_lengths
from lrpilot.training.devices import autocast, resolve_device
from lrpilot.training.divergence import DivergenceRule, first_val_loss, resolve_rule
from lrpilot.training.evaluation import evaluate_split, forward
from lrpilot.training.evidence import label_statistics
from lrpilot.training.intervals import Interval
from lrpilot.training.loading import load_splits
from lrpilot.training.optim import build_optimizer, optimizer_mode
from lrpilot.training.snapshots import UNDO_LR_FACTOR, check_lr_factor, snapshot
from lrpilot.training.task import Task, get_task

__all__ = ["TrainingSession", "COMPILE_MODES"]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""``torch.compile`` modes a session accepts by name (``compile=True`` means ``"default"``)."""

BatchCallback = Callable[[int, int], None]


class TrainingSession:
    """Train ``task`` with ``seed`` on ``device``, one epoch per :meth:`run_epoch` call.

    Runs with the same task and seed start from the same weights and see the same data
    order, whatever drives their learning rate, so comparisons across controllers are
    paired. ``scale_lr`` keeps every parameter group's LR within [``min_lr``, ``max_lr``].

    An epoch is marked ``diverged`` by ``divergence``, a
    :class:`~lrpilot.training.divergence.DivergenceRule`: by default when a training loss,
    the validation loss or a weight is non-finite, or when the validation loss exceeds 10
    times the chance-level loss log(num_classes): a run that far above chance has blown up
    even if its numbers are still finite. A rule with ``growth_factor`` (as the
    environments use) also flags a validation loss that far above the run's first one.
    (``divergence_factor``, the chance factor alone, is the deprecated older spelling.)

    ``interval`` sets how often the run reports metrics and can be steered (see
    :class:`~lrpilot.training.intervals.Interval`): None, one epoch (the default), ``0.25``
    (four intervals per epoch) or ``"50steps"``; :meth:`run_interval` trains one.
    ``val_subset`` validates on a fixed subset of that many validation examples (the same ones
    for every interval and every seed: the first ``val_subset`` of a seed-0 permutation), which
    makes frequent validation affordable on large splits; the test split is always whole.

    ``compile`` compiles the model's forward (and so its backward) with ``torch.compile``:
    True or a mode name from ``COMPILE_MODES``; None (the default) compiles on CUDA when
    the task's data says it pays (``meta["compile"]``, set by ``cifar10-resnet18``) and
    never on the CPU, where compiling costs minutes. The module is compiled in place
    (``nn.Module.compile``), so ``state_dict`` keys stay those of the plain model and a
    checkpoint resumes with or without compilation. Shapes are compiled statically
    (``dynamic=False``): a run has a handful of batch shapes (full, last, evaluation).

    Example:
        >>> session = TrainingSession("digits-mlp", seed=0)
        >>> for _ in range(3):
        ...     metrics = session.run_epoch()
        ...     session.scale_lr(0.5)
    """

    def __init__(
        self,
        task: Task | str,
        seed: int = 0,
        device: str | torch.device = "auto",
        *,
        data_dir: str | None = None,
        min_lr: float = 0.0,
        max_lr: float = math.inf,
        epoch_examples: int | None = None,
        divergence: DivergenceRule | None = None,
        divergence_factor: float | None = None,
        data: DataSplits | None = None,
        compile: bool | str | None = None,  # noqa: A002 - the torch name for the same switch
        undo: bool = False,
        interval: Interval | str | float | None = None,
        val_subset: int | None = None,
    ) -> None:
        self.task = get_task(task)
        self.task.validate()
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not (0 <= min_lr < max_lr):
            raise ValueError(f"need 0 <= min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}")
        if epoch_examples is not None and epoch_examples < 1:
            raise ValueError(f"epoch_examples must be >= 1 or None, got {epoch_examples}")
        self.seed, self.min_lr, self.max_lr, self.epoch_examples = seed, min_lr, max_lr, epoch_examples
        self.divergence = resolve_rule(divergence, divergence_factor, "TrainingSession")
        self.device = resolve_device(device)
        self.interval = Interval.parse(interval)
        if val_subset is not None and (isinstance(val_subset, bool) or not isinstance(val_subset, int) or val_subset < 1):
            raise ValueError(f"val_subset must be an integer >= 1 or None, got {val_subset!r}")
        self.val_subset = val_subset
        splits = data if data is not None else load_splits(self.task, data_dir)
        if val_subset is not None and val_subset < len(splits.val):
            kept = fixed_split_indices(len(splits.val), val_subset)[1]
            splits = dataclasses.replace(splits, val=splits.val.subset(kept))
        self.data = splits.to(self.device)
        with self._rng(torch.Generator().manual_seed(seed).get_state(), None):
            self.model = self.task.build_model(self.task, self.data).to(self.device)
            self._torch_rng = torch.get_rng_state()
        if self.device.type == "cuda" and self.data.meta.get("channels_last"):
            self.model = self.model.to(memory_format=torch.channels_last)
        self.compiled = self._compile(compile)
        self._lengths = self._split_lengths()
        self._cuda_rng = self._fresh_cuda_rng(seed)
        self.optimizer = build_optimizer(self.task, self.model)
        self._data_gen = torch.Generator().manual_seed(seed)
        examples = min(len(self.data.train), self.epoch_examples or len(self.data.train))
        self.batches_per_epoch = math.ceil(examples / self.task.batch_size)
        self._bounds = self.interval.boundaries(self.batches_per_epoch)
        self.intervals_per_epoch = len(self._bounds)
        """Decisions per epoch (1 with the default interval)."""
        self._order: torch.Tensor | None = None  # the current epoch's example order, once it has begun
        self._position = 0  # batches of the current epoch already trained
        self._label_stats = {name: label_statistics(self.data.split(name).labels, self.data.num_classes)
                             for name in ("val", "test")}
        self.epoch = 0
        """Intervals run so far, undone ones included (the budget spent; never goes back). With the
        default interval, the epochs run."""
        self.history: list[EpochMetrics] = []
        if not isinstance(undo, bool):
            raise ValueError(f"undo must be True or False, got {undo!r}")
        self.keeps_snapshots = undo
        """With ``undo=True``, every epoch starts by keeping a copy of the run's state (see :meth:`undo`)."""
        self._snapshots: list[dict[str, Any]] = []  # the starts of the last intervals not undone, newest last
        self.undo_reach = 1
        """How many interval starts the next interval keeps (at least 1): an undo after it may rewind that
        many intervals. A driver sets it from its controller's ``undo_reach`` before each interval."""
        self._start_spread: float | None = None  # val_spread before training (measured with undo=True)

    # -- properties ---------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def total_intervals(self, epochs: int) -> int:
        """The decisions a budget of ``epochs`` allows: ``epochs * intervals_per_epoch``."""
        return epochs * self.intervals_per_epoch

    # -- training -----------------------------------------------------------------
    def run_epoch(self, on_batch: BatchCallback | None = None) -> EpochMetrics:
        """Train one epoch, validate, and return (and remember) the epoch's metrics (sessions with the
        default interval of one epoch; others call :meth:`run_interval`)."""
        if self.intervals_per_epoch != 1:
            raise RuntimeError(f"this session decides {self.intervals_per_epoch} times per epoch "
                               f"(interval {self.interval}); call run_interval()")
        return self.run_interval(on_batch)

    def run_interval(self, on_batch: BatchCallback | None = None) -> EpochMetrics:
        """Train up to the next interval boundary, validate, and return (and remember) the metrics.

        The record's ``epoch`` is the 1-based index of the interval (the epoch, with the default
        interval) and, with more than one interval per epoch, ``elapsed_epochs`` the budget spent.
        ``on_batch(i, n)`` is called after each batch with its 1-based index within the epoch of ``n``.
        """
        if self.keeps_snapshots and self.epoch == 0 and self._start_spread is None:
            self._start_spread = self.evaluate("val")["spread"]  # the reference for judging a collapse
        if self.keeps_snapshots:
            keep = max(int(self.undo_reach), 1) - 1  # free the copies no undo can reach before taking one
            del self._snapshots[:max(len(self._snapshots) - keep, 0)]
            self._snapshots.append(self._take_snapshot())
        start = time.perf_counter()
        lr = self.lr
        losses, norms, finite = self._train_pass(on_batch)
        losses_cpu = torch.stack(losses).double().cpu() if losses else torch.tensor([math.nan])
        train_loss = float(losses_cpu.mean()) if finite else math.nan
        train_std = float(losses_cpu.std(unbiased=False)) if finite and len(losses_cpu) > 1 else 0.0
        grad_norm = float(torch.stack(norms).double().mean().cpu()) if norms else math.nan
        val = self.evaluate("val") if finite else {"loss": math.nan, "acc": None}
        diverged = self.divergence.diverged(val["loss"], self.data.num_classes, finite=finite and self._weights_finite(),
                                            first_val_loss=first_val_loss(self.history))
        self.epoch += 1
        metrics = EpochMetrics(
            epoch=self.epoch, lr=lr, train_loss=train_loss, train_loss_std=train_std,
            val_loss=val["loss"], val_acc=val["acc"], grad_norm=grad_norm,
            seconds=time.perf_counter() - start, diverged=diverged,
            elapsed_epochs=self.epoch / self.intervals_per_epoch if self.intervals_per_epoch > 1 else None,
            val_top_share=val.get("top_share"), val_majority_share=val.get("majority_share"),
            val_chance_loss=val.get("chance_loss"), val_spread=val.get("spread"), val_spread_start=self._start_spread,
            weight_change=weight_change(self.model, self._snapshots[-1]["model"]) if self.keeps_snapshots and finite
            else None,
        )
        self.history.append(metrics)
        return metrics

    def _train_pass(self, on_batch: BatchCallback | None) -> tuple[list[torch.Tensor], list[torch.Tensor], bool]:
        """Train from the current position to the next interval boundary. The epoch's example order is
        drawn when it begins (as :func:`iter_batches` draws it) and kept until it ends, so intervals
        see exactly the batches, augmentation and dropout of an uninterrupted epoch."""
        model, opt, task = self.model, self.optimizer, self.task
        total = self.batches_per_epoch
        first = self._position
        stop = next(b for b in self._bounds if b > first)
        losses: list[torch.Tensor] = []
        norms: list[torch.Tensor] = []
        finite = True
        check_every = 1 if self.device.type == "cpu" else 32
        params = [p for p in model.parameters() if p.requires_grad]
        model.train()
        optimizer_mode(opt, train=True)
        with self._rng(self._torch_rng, self._cuda_rng):
            if self._order is None:
                self._order = epoch_order(self.data.train, task.batch_size, self._data_gen, limit=self.epoch_examples,
                                          lengths=self._lengths.get("train"))
            batches = batches_of(self.data.train, self._order, task.batch_size, first, stop)
            for i, (inputs, labels) in enumerate(batches, start=first):
                inputs = self.data.train_transform(inputs, self._data_gen)
                with autocast(self.device):
                    logits = forward(model, inputs)
                loss = F.cross_entropy(logits.float(), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                norms.append(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
                opt.step()
                losses.append(loss.detach())
                if on_batch is not None:
                    on_batch(i + 1, total)
                if (i + 1) % check_every == 0 and not bool(torch.isfinite(loss)):
                    finite = False
                    break
            self._torch_rng = torch.get_rng_state()
            if self.device.type == "cuda":
                self._cuda_rng = torch.cuda.get_rng_state(self.device)
        self._position = stop if stop < total else 0
        if self._position == 0:
            self._order = None
        finite = finite and bool(torch.isfinite(torch.stack(losses)).all()) if losses else False
        return losses, norms, finite

    def evaluate(self, split: str = "test") -> dict[str, Any]:
        """Mean loss and accuracy on ``split`` ("val" or "test"), and the evidence of a collapse (``top_share``,
        ``majority_share``, ``chance_loss``, ``spread``: :func:`~lrpilot.training.evaluation.evaluate_split`);
        no gradients, no randomness."""
        return evaluate_split(self.model, self.optimizer, self.task, self.data, split, self.device,
                              self._label_stats[split], self._lengths.get(split))

    def _compile(self, setting: bool | str | None) -> bool:
        """Compile the model in place when asked (or, for None, on CUDA when the task says it pays)."""
        if setting is None:
            setting = self.device.type == "cuda" and bool(self.data.meta.get("compile"))
        if setting is False:
            return False
        if setting is not True and setting not in COMPILE_MODES:
            raise ValueError(f"compile must be True, False, None or one of {', '.join(COMPILE_MODES)}; got {setting!r}")
        self.model.compile(mode=None if setting is True else setting, dynamic=False)
        return True

    def _split_lengths(self) -> dict[str, torch.Tensor]:
        """Per-example sequence lengths of every split, when the data asks for length-grouped batches."""
        if not self.data.meta.get("group_by_length"):
            return {}
        return {name: sequence_lengths(self.data.split(name)) for name in ("train", "val", "test")}

    def scale_lr(self, factor: float) -> float:
        """Multiply every group's LR by ``factor`` (clamped to [min_lr, max_lr]); returns the new LR."""
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"factor must be a finite number > 0, got {factor!r}")
        for group in self.optimizer.param_groups:
            group["lr"] = min(max(group["lr"] * factor, self.min_lr), self.max_lr)
        return self.lr

    # -- undo -----------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        """True when the last interval can be undone (``undo=True`` and not undone already)."""
        return bool(self._snapshots)

    @property
    def undo_depth(self) -> int:
        """How many intervals an undo could rewind now (0: none)."""
        return len(self._snapshots)

    def undo(self, lr_factor: float = UNDO_LR_FACTOR, intervals: int = 1) -> EpochMetrics:
        """Rewind the run to the start of the last interval (epoch) and multiply the LR by ``lr_factor``.

        With ``intervals=k`` (at most :attr:`undo_depth`, which :attr:`undo_reach` set), rewind to the
        start of the k-th interval back instead: the last k intervals not undone are all marked
        ``undone``, and the retry runs at the last interval's LR times ``lr_factor``.

        The model, the optimiser (its LR included), every random generator and the position in the
        epoch's data order are restored as they were when that interval began, so the retry sees the
        same batches in the same order with the same augmentation; only the LR differs. The interval
        still counts (``epoch`` does not go back: the budget was spent) and its metrics stay in
        ``history``, marked ``undone``. Needs ``undo=True``; one undo per interval. Returns the
        undone interval's metrics.

        Cost: the snapshot is a copy of the weights and the optimiser state (for Adam, three times
        the weights' memory), taken at the start of every interval, on the session's device, or in
        host memory when the GPU has less than twice its size free (docs/performance.md).
        """
        if not self._snapshots:
            reason = "this session keeps no snapshots (undo=False)" if not self.keeps_snapshots else \
                "no epoch has run since the last undo"
            raise RuntimeError(f"nothing to undo: {reason}")
        check_lr_factor(lr_factor)
        if isinstance(intervals, bool) or not isinstance(intervals, int) or not 1 <= intervals <= len(self._snapshots):
            raise ValueError(f"intervals must be an integer from 1 to {len(self._snapshots)} (the interval starts "
                             f"kept, see undo_reach), got {intervals!r}")
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        snap = self._snapshots[-intervals]
        del self._snapshots[-intervals:]
        self._restore_training_state(snap)
        if intervals > 1:  # the retry starts at the LR the run had reached, not the rewound interval's
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = lr
        kept = [i for i, m in enumerate(self.history) if not m.undone][-intervals:]
        for i in kept:
            self.history[i] = dataclasses.replace(self.history[i], undone=True)
        self.scale_lr(lr_factor)
        return self.history[-1]

    def _take_snapshot(self) -> dict[str, Any]:
        """A copy of :meth:`_training_state` (the live one shares the model's and optimiser's tensors),
        kept in host memory when the GPU would not hold it twice over."""
        return snapshot(self._training_state(), self.device)

    def _training_state(self) -> dict[str, Any]:
        """What decides the next interval: model, optimiser (LR included), every random generator and,
        mid-epoch, the epoch's example order and how far into it the run is."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "data_generator": self._data_gen.get_state(),
            "torch_rng": self._torch_rng,
            "cuda_rng": self._cuda_rng,
            **({"epoch_order": self._order, "epoch_position": self._position} if self._order is not None else {}),
        }

    def _restore_training_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`_training_state` (a state without an epoch order is at an epoch's start)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._data_gen.set_state(state["data_generator"])
        self._torch_rng = state["torch_rng"]
        self._cuda_rng = state["cuda_rng"] if self.device.type == "cuda" else None
        order = state.get("epoch_order")
        self._order = None if order is None else order.cpu()
        self._position = int(state.get("epoch_position", 0)) if order is not None else 0

    def _weights_finite(self) -> bool:
        flags = [torch.isfinite(p).all() for p in self.model.parameters()]
        return bool(torch.stack(flags).all()) if flags else True

    # -- state --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Model, optimiser, every RNG, the epoch and the history (undone epochs marked), and with
        ``undo=True`` the snapshot that lets the last epoch be undone after a restart; loads with
        ``weights_only=True``."""
        return {
            "task": self.task.name,
            "seed": self.seed,
            "epoch": self.epoch,
            **({"interval": str(self.interval)} if not self.interval.is_epoch else {}),
            **self._training_state(),
            "history": [m.to_dict() for m in self.history],
            **({"undo_snapshot": self._snapshots[-1]} if self._snapshots else {}),
            **({"undo_snapshots_before": self._snapshots[:-1]} if len(self._snapshots) > 1 else {}),
            **({"val_spread_start": self._start_spread} if self._start_spread is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` of a session of the same task."""
        if state.get("task") != self.task.name:
            raise ValueError(f"state is for task {state.get('task')!r}, this session trains {self.task.name!r}")
        if state.get("interval", "1") != str(self.interval):
            raise ValueError(f"state is for interval {state.get('interval', '1')}, this session's is {self.interval}")
        self._restore_training_state(state)
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self.history = [EpochMetrics.from_dict(m) for m in state["history"]]
        snapshot = state.get("undo_snapshot")  # the last epoch (and a deeper reach) stays undoable across a restart
        kept = [*state.get("undo_snapshots_before", []), snapshot] if snapshot is not None else []
        self._snapshots = kept if self.keeps_snapshots else []
        self._start_spread = state.get("val_spread_start")

    # -- randomness ---------------------------------------------------------------
    def _fresh_cuda_rng(self, seed: int) -> torch.Tensor | None:
        if self.device.type != "cuda":
            return None
        with torch.random.fork_rng(devices=[self.device]):
            torch.cuda.manual_seed(seed)
            return torch.cuda.get_rng_state(self.device)

    @contextlib.contextmanager
    def _rng(self, cpu_state: torch.Tensor, cuda_state: torch.Tensor | None):
        """Run with this session's RNG state; the caller's global RNG is left untouched."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, self.device)
            yield

