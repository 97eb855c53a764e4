"""One run: a task, a controller and a seed, trained interval by interval (by default epoch by epoch)
with a checkpoint per interval.

Used by ``lrpilot train`` and by every run of ``lrpilot compare``. With an output
directory, each interval ends with an atomic checkpoint (session, controller, elapsed
time) and an atomic rewrite of ``metrics.jsonl``, so the same call after a crash or
``kill -9`` resumes from the last finished interval and ends with identical results.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from lrpilot.atomic import torch_save_atomic, write_text_atomic
from lrpilot.controller import from_spec
from lrpilot.controller.base import Undo, pretrained_flag
from lrpilot.metrics import EpochMetrics
from lrpilot.training import TrainingSession, get_task
from lrpilot.training.snapshots import UNDO_LR_FACTOR
from lrpilot.training.task import Task

__all__ = ["RunConfig", "RunResult", "run_training", "read_metrics", "load_checkpoint", "METRICS_FILE", "CHECKPOINT_FILE"]

METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one run; ``None`` keeps the task's default."""

    task: str
    """Registered task name."""
    controller: str = "constant"
    """Controller spec string (``rule``, ``plateau:patience=2``, ``policy:default``...)."""
    seed: int = 0
    """Seed of the initial weights, data order, augmentation and dropout."""
    lr: float | None = None
    """Initial learning rate."""
    epochs: int | None = None
    """Epoch budget."""
    batch_size: int | None = None
    """Training minibatch size."""
    optimizer: str | None = None
    """Optimiser name."""
    weight_decay: float | None = None
    """Weight decay."""
    task_options: Mapping[str, Any] = field(default_factory=dict)
    """Task-specific settings (e.g. ``max_length`` or ``model`` for imdb-bert)."""
    data_dir: str | None = None
    """Local copy of the dataset (``datasets.save_to_disk`` format)."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    interval: str | None = None
    """Control interval: None (one decision per epoch), a fraction of an epoch (``"0.25"``) or a number
    of optimizer steps (``"50steps"``); see :class:`~lrpilot.training.intervals.Interval`."""
    val_subset: int | None = None
    """Validate on a fixed subset of this many validation examples (the same every time); None: all."""
    undo: bool = True
    """False: keep no snapshots, so nothing can be undone; a learned policy's undo action is then masked
    and a controller that exists to undo (``X+guard``) is refused. Snapshots are only ever taken for a
    controller that may undo."""

    def build_task(self) -> Task:
        """The registered task with this run's overrides applied (validated)."""
        clash = sorted(set(self.task_options) & {"lr", "epochs", "batch_size", "optimizer", "weight_decay"})
        if clash:
            raise ValueError(f"task_options: {', '.join(clash)} is a run setting, not a task option; "
                             f"give it as {', '.join('--' + k.replace('_', '-') for k in clash)}")
        return get_task(self.task).with_overrides(
            lr=self.lr, epochs=self.epochs, batch_size=self.batch_size,
            optimizer=self.optimizer, weight_decay=self.weight_decay, **dict(self.task_options),
        )

    @property
    def name(self) -> str:
        """A greppable run name: ``task__controller__lrX__sN``."""
        lr = "default" if self.lr is None else f"{self.lr:g}"
        opt = "" if self.optimizer is None else f"__{self.optimizer}"
        every = "" if self.interval is None else f"__i{self.interval}"
        val = "" if self.val_subset is None else f"__v{self.val_subset}"
        return f"{self.task}__{self.controller}{opt}{every}{val}__lr{lr}__s{self.seed}".replace("/", "_").replace(" ", "")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``interval`` and ``val_subset`` appear only when set, so run folders
        written before they existed still match (and resume)."""
        out = asdict(self)
        out["task_options"] = dict(self.task_options)
        for key in ("interval", "val_subset"):
            if out[key] is None:
                del out[key]
        if out["undo"]:
            del out["undo"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown run setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**dict(data))


@dataclass
class RunResult:
    """A finished run: its per-epoch metrics and the final (test) figures."""

    config: RunConfig
    history: list[EpochMetrics]
    final: dict[str, Any]


def run_training(
    config: RunConfig,
    out_dir: str | Path | None = None,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    keep_checkpoint: bool = False,
) -> RunResult:
    """Train ``config`` to the end of its budget (or divergence), resuming from ``out_dir`` if possible.

    ``on_epoch`` is called with every interval's metrics (every epoch's, with the default interval)."""
    task = config.build_task()
    controller = from_spec(config.controller)
    if not config.undo:
        controller.disable_undo()  # masks an optional undo; ValueError for a controller that exists to undo
    session = TrainingSession(task, seed=config.seed, device=config.device, data_dir=config.data_dir,
                              undo=controller.may_undo, interval=config.interval, val_subset=config.val_subset)
    told = pretrained_flag(task.starts_pretrained())
    if session.intervals_per_epoch == 1 and not told:  # the call plugin controllers written before intervals know
        controller.reset(task.lr, task.epochs)
    else:
        controller.reset(task.lr, task.epochs, session.intervals_per_epoch, **told)
    budget = session.total_intervals(task.epochs)
    if controller.may_undo:
        controller.allow_rewind(budget)  # the session keeps as many interval starts as the controller may need
    out = Path(out_dir) if out_dir is not None else None
    elapsed = 0.0
    if out is not None:
        done = read_metrics(out / METRICS_FILE)
        if done is not None and done[1] is not None:
            _check_same_config(out, config, done[1].get("config"))
            return RunResult(config, done[0], done[1])
        elapsed = _resume(out, config, session, controller)
    for metrics in session.history:
        if on_epoch is not None:
            on_epoch(metrics)
    while session.epoch < budget and not _ended_diverged(session.history):
        start = time.perf_counter()
        session.undo_reach = controller.undo_reach
        metrics = session.run_interval(on_batch)
        _apply_decision(session, controller, metrics, budget_left=session.epoch < budget)
        elapsed += time.perf_counter() - start
        if on_epoch is not None:
            on_epoch(session.history[-1])  # marked undone if the controller undid it
        if out is not None:
            torch_save_atomic(out / CHECKPOINT_FILE, {
                "config": config.to_dict(), "session": session.state_dict(),
                "controller": controller.state_dict(), "elapsed": elapsed,
            })
            _write_metrics(out, session.history, None)
    final = _final(config, session, elapsed)
    if out is not None:
        _write_metrics(out, session.history, final)
        if not keep_checkpoint:
            (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    return RunResult(config, list(session.history), final)


def _ended_diverged(history: list[EpochMetrics]) -> bool:
    """The run is over: its last epoch diverged and was not undone."""
    return bool(history) and history[-1].diverged and not history[-1].undone


def _apply_decision(session: TrainingSession, controller: Any, metrics: EpochMetrics, budget_left: bool) -> None:
    """Ask the controller after an epoch with budget left and apply its answer. A diverged epoch asks
    only a controller that may undo: an undo rewinds it and the run goes on; any other answer ends it."""
    if not budget_left or (metrics.diverged and not controller.may_undo):
        return
    decision = controller.act(metrics)
    if isinstance(decision, Undo):
        session.undo(decision.lr_factor(UNDO_LR_FACTOR), intervals=decision.intervals)
    elif not metrics.diverged:
        session.scale_lr(decision)


def _final(config: RunConfig, session: TrainingSession, elapsed: float) -> dict[str, Any]:
    per_epoch = session.intervals_per_epoch == 1  # else epochs_run and diverged_epoch are fractions of epochs
    diverged_at = next((m.epoch if per_epoch else m.elapsed_epochs for m in session.history
                        if m.diverged and not m.undone), None)
    undos = sum(m.undone for m in session.history)
    test = {"loss": math.nan, "acc": None} if diverged_at else session.evaluate("test")
    return {
        "test_loss": test["loss"] if math.isfinite(test["loss"]) else None,
        "test_acc": test["acc"],
        "epochs_run": session.epoch if per_epoch else round(session.epoch / session.intervals_per_epoch, 6),
        **({"intervals_run": session.epoch} if session.intervals_per_epoch > 1 else {}),
        "diverged": diverged_at is not None,
        "diverged_epoch": diverged_at,
        "final_lr": session.lr,
        "wall_time": elapsed,
        "torch_threads": torch.get_num_threads(),  # the numbers are bit-identical only at the same count
        **({"undos": undos} if undos else {}),  # written only when the run undid, as EpochMetrics.undone
        "config": config.to_dict(),
    }


def _resume(out: Path, config: RunConfig, session: TrainingSession, controller) -> float:  # noqa: ANN001
    path = out / CHECKPOINT_FILE
    if not path.exists():
        return 0.0
    state = load_checkpoint(path, session.device)
    _check_same_config(out, config, state.get("config"))
    session.load_state_dict(state["session"])
    controller.load_state_dict(state["controller"])
    return float(state["elapsed"])


def load_checkpoint(path: str | Path, device: Any = "cpu") -> dict[str, Any]:
    """A checkpoint lrpilot wrote, loaded with ``weights_only=True``: a file holding anything but
    tensors and plain values (a planted pickle) is refused with ``ValueError`` and never executed."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of a file it then refuses
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ValueError(f"{path} is not a checkpoint lrpilot wrote, refused to load it ({type(exc).__name__}: "
                         f"{reason}); delete it to restart this run from scratch") from None
    if not isinstance(state, dict) or not {"session", "controller", "elapsed"} <= set(state):
        raise ValueError(f"{path} is not a checkpoint lrpilot wrote (missing session/controller/elapsed); "
                         "delete it to restart this run from scratch")
    return state


def _check_same_config(out: Path, config: RunConfig, saved: Mapping[str, Any] | None) -> None:
    if saved is not None and dict(saved) != config.to_dict():
        raise ValueError(f"{out} holds a run with a different configuration; use another --out or delete it")


def _write_metrics(out: Path, history: list[EpochMetrics], final: dict[str, Any] | None) -> None:
    lines = [json.dumps(m.to_dict(), allow_nan=False) for m in history]
    if final is not None:
        lines.append(json.dumps({"final": final}, allow_nan=False))
    write_text_atomic(out / METRICS_FILE, "\n".join(lines) + "\n")


def read_metrics(path: str | Path) -> tuple[list[EpochMetrics], dict[str, Any] | None] | None:
    """Parse a ``metrics.jsonl``: (per-epoch metrics, the final record or None); None if absent."""
    path = Path(path)
    if not path.exists():
        return None
    history: list[EpochMetrics] = []
    final = None
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a metrics file lrpilot wrote (not UTF-8 text)") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: not a metrics record (a JSON object)")
        if "final" in record:
            final = record["final"]
            continue
        try:
            history.append(EpochMetrics.from_dict(record))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: not a metrics record ({type(exc).__name__}: {exc})") from None
    return history, final
