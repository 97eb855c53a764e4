"""Any lrpilot controller as a Hugging Face ``Trainer`` callback.

After every evaluation the controller reads ``eval_loss`` (and ``eval_accuracy`` and
the last logged training ``loss``) and answers with an LR multiplier. The multiplier
scales the ``base_lrs`` of the Trainer's own scheduler (a plain write to
``param_group["lr"]`` would be undone by the Trainer's LambdaLR at its next step,
even with the constant schedule), so it composes with the Trainer's schedule: use
``lr_scheduler_type="constant"`` to give the controller full control.

The controller state travels in the Trainer's checkpoints through transformers'
``ExportableState`` protocol (``trainer_state.json``), so
``trainer.train(resume_from_checkpoint=...)`` continues the same control.

A controller that may undo (``rule+guard``) rewinds the Trainer's model and optimizer in place
to the start of the interval (the previous evaluation) and cuts the LR; see :class:`PolicyLRCallback`.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

try:
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState
except ImportError as exc:  # pragma: no cover - transformers is a core dependency
    raise ImportError(
        "lrpilot.integrations.hf needs transformers and accelerate: pip install transformers accelerate"
    ) from exc

import torch

from lrpilot.controller.base import Controller, pretrained_flag
from lrpilot.integrations.evidence import EVIDENCE_METRICS
from lrpilot.integrations.rewind import IntervalSnapshot, UndoIntrospection, check_undo_factor, prepare_undo, sharded_reason
from lrpilot.integrations.scheduler import (
    check_bounds, check_total_epochs, build_epoch_metrics, check_identity, check_required, rescale_optimizer,
    resolve_controller, told_pretrained,
)

__all__ = ["PolicyLRCallback"]

_PLATEAU_TYPES = ("reduce_lr_on_plateau", "greedy")
SNAPSHOT_FILE = "lrpilot_undo_snapshot.pt"
"""Written into a checkpoint folder saved between two evaluations: the state the next undo restores."""


def _value(setting: Any) -> str:
    """An enum setting (IntervalStrategy, SchedulerType) as its plain string."""
    return str(getattr(setting, "value", setting))


def _eval_strategy(args: Any) -> str:
    """``eval_strategy`` (``evaluation_strategy`` before transformers 4.41) as a string."""
    return _value(getattr(args, "eval_strategy", getattr(args, "evaluation_strategy", "no")))


def _unwrap(scheduler: Any) -> Any:
    """The scheduler holding ``base_lrs`` (accelerate wraps the Trainer's one)."""
    while scheduler is not None and not hasattr(scheduler, "base_lrs") and hasattr(scheduler, "scheduler"):
        scheduler = scheduler.scheduler
    return scheduler


class PolicyLRCallback(UndoIntrospection, TrainerCallback, ExportableState):
    """Apply a controller to a ``transformers.Trainer`` once per evaluation.

    Args:
        controller: a Controller, a spec string (``"rule"``, ``"policy:default"``) or a
            learned policy path.
        total_epochs: with ``decisions_per_epoch``, the epochs the controller plans for; without, the
            number of evaluations; default
            ``args.num_train_epochs`` (with ``eval_strategy="steps"``: max_steps // eval_steps).
        min_lr: lower bound of the controlled (base) LR. Default: 0.
        max_lr: upper bound of the controlled (base) LR; None for no bound.
        undo: let a controller that may undo rewind the model; False keeps no snapshots (a
            learned policy then never undoes, a ``+guard`` controller is refused). Default: True.
        undo_lr_factor: what an undo multiplies the restored (base) LR by, in (0, 1]. Default: 0.1.
        decisions_per_epoch: evaluations per epoch (with ``eval_strategy="steps"`` and
            ``eval_steps = ceil(steps_per_epoch / N)``: N). Given, the controller plans
            ``total_epochs`` (default ``num_train_epochs``) epochs of N decisions each, its
            parameters in epochs; None (default): every evaluation counts as one epoch.
        pretrained: True when the model starts from pretrained weights (``from_pretrained``: the usual
            Trainer fine-tune); the controller is told (``policy:default`` then spreads its raises over the
            epoch's decisions, as ``policy:finetune`` does; ``+guard`` also judges a whole epoch by how far it
            moved the weights). Default: None, not said: taken as False, with a warning at train begin when
            the model was loaded by ``from_pretrained`` and the controller reads it (``+guard``,
            ``policy:default``).

    Needs an eval strategy that evaluates (``"epoch"`` or ``"steps"``), one eval
    dataset, and a scheduler with ``base_lrs`` (every Trainer schedule except the
    plateau-type ones, which this callback refuses). For controllers that read
    ``train_loss`` (learned policies do), log the training loss at least once per
    evaluation, e.g. ``logging_strategy="epoch"``. To resume, pass the same
    controller; with ``restore_callback_states_from_checkpoint=True`` the Trainer
    rebuilds the callback from ``controller.spec()`` instead.

    Undo: with a controller that may undo, the callback copies the model and the optimizer at
    train begin and after every evaluation it acted on; on an undo it restores them in place, cuts
    the LR by ``undo_lr_factor`` and records the undo (:attr:`undone`, saved with the checkpoints).
    The Trainer's step count, data order, gradient scaler and schedule go on. A checkpoint saved
    between two evaluations also holds the snapshot (``lrpilot_undo_snapshot.pt``), so a resumed
    run can still undo. DeepSpeed and FSDP (``args.deepspeed``, ``args.fsdp``) are refused for a
    controller whose purpose is to undo; a learned policy's undo is masked there (one warning).

    Example:
        >>> # xdoctest: +SKIP
        >>> args = TrainingArguments("out", eval_strategy="epoch", logging_strategy="epoch",
        ...                          lr_scheduler_type="constant", num_train_epochs=10)
        >>> trainer = Trainer(model, args, train_dataset=train, eval_dataset=val,
        ...                   callbacks=[PolicyLRCallback("policy:default")])
        >>> trainer.train()
    """

    def __init__(
        self,
        controller: Controller | str | os.PathLike[str],
        *,
        total_epochs: int | None = None,
        min_lr: float = 0.0,
        max_lr: float | None = None,
        undo: bool = True,
        undo_lr_factor: float = 0.1,
        decisions_per_epoch: int | None = None,
        pretrained: bool | None = None,
    ) -> None:
        check_bounds(min_lr, max_lr)
        check_total_epochs(total_epochs)
        self._pretrained = pretrained
        self._told = pretrained_flag(False if pretrained is None else pretrained)  # a bad value fails here, at once
        if not isinstance(undo, bool):
            raise ValueError(f"undo must be True or False, got {undo!r}")
        self.undo_lr_factor = check_undo_factor(undo_lr_factor)
        self.controller = resolve_controller(controller)
        prepare_undo(self.controller, can_rewind=undo, owner=type(self).__name__, why="was given undo=False",
                     warn=False)
        self.undo = undo
        if decisions_per_epoch is not None and (isinstance(decisions_per_epoch, bool)
                                                or not isinstance(decisions_per_epoch, int) or decisions_per_epoch < 1):
            raise ValueError(f"decisions_per_epoch must be None or an integer >= 1, got {decisions_per_epoch!r}")
        self.decisions_per_epoch = decisions_per_epoch
        self._snapshot: IntervalSnapshot | None = None
        self.undone: list[int] = []
        """The decisions (1-based) that were undos."""
        self._last_undo = False
        self.total_epochs = total_epochs
        self.min_lr, self.max_lr = float(min_lr), (None if max_lr is None else float(max_lr))
        self.saved_state: dict[str, Any] | None = None
        """Set by the Trainer when it rebuilds this callback from a checkpoint; applied at train begin."""
        self.last_step = -1
        """The global step of the last evaluation the controller acted on."""
        self._active = False

    # -- ExportableState: saved in trainer_state.json with every checkpoint -----------
    def state(self) -> dict[str, Any]:
        """``args`` rebuild the callback; ``attributes`` hold the controller's whole state."""
        args = {"controller": self.controller.spec(), "total_epochs": self.total_epochs,
                "min_lr": self.min_lr, "max_lr": self.max_lr, "undo": self.undo, "undo_lr_factor": self.undo_lr_factor,
                **({"decisions_per_epoch": self.decisions_per_epoch} if self.decisions_per_epoch else {}),
                **self._told}
        saved = None
        if self._active or self.last_step >= 0:
            saved = {"controller": self.controller.state_dict(),
                     "policy_hash": getattr(self.controller, "policy_hash", None), "last_step": self.last_step,
                     **({"undone": list(self.undone), "last_undo": self._last_undo} if self.undone else {})}
        return {"args": args, "attributes": {"saved_state": saved}}

    # -- Trainer events ------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Check the Trainer's set-up, then start the controller or restore it when resuming."""
        scheduler = _unwrap(kwargs.get("lr_scheduler"))
        self._check_trainer(args, scheduler)
        saved = self.saved_state or self._saved_in(state)
        if saved is not None:
            self.controller.load_state_dict(check_identity(self.controller, saved))
            self.last_step = int(saved["last_step"])
            self.undone = [int(i) for i in saved.get("undone", [])]
            self._last_undo = bool(saved.get("last_undo", False))
        else:
            if state.global_step > 0:
                warnings.warn(
                    f"resuming at step {state.global_step} without a saved {type(self).__name__} state: "
                    "the controller starts afresh", stacklevel=2,
                )
            self._told = told_pretrained(self._pretrained, kwargs.get("model"), self.controller, type(self).__name__)
            self._reset_controller(args, state, float(scheduler.base_lrs[0]))
            self.last_step = state.global_step
        self.saved_state = None
        self._start_snapshots(args, state, kwargs.get("model"), kwargs.get("optimizer") or scheduler.optimizer)
        self._active = True
        if isinstance(state.stateful_callbacks, dict):
            # A checkpoint made without this callback has no entry for it, and the Trainer's
            # _save_checkpoint would fail with a KeyError on the next save.
            state.stateful_callbacks.setdefault(type(self).__name__, self.state())

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                    **kwargs: Any) -> None:
        """Feed this evaluation to the controller and rescale the LR (only while training)."""
        if not self._active or state.global_step == self.last_step:
            return  # an evaluation outside train(), eval_on_start, or a repeat at the same step
        values = self._with_weight_change(_metrics_from(metrics or {}, state.log_history, since_step=self.last_step))
        check_required(self.controller, values, hint=(
            f"; evaluation metrics were {sorted(metrics or {})}. Log the training loss once per evaluation "
            "(e.g. logging_strategy='epoch') and give the Trainer an eval_dataset"))
        scheduler = _unwrap(kwargs.get("lr_scheduler"))
        epoch_metrics = build_epoch_metrics(values, self.controller.epochs_seen + 1, float(scheduler.base_lrs[0]))
        decision = self.controller.act(epoch_metrics)
        multiplier = self._carry_out(decision)
        rescale_optimizer(scheduler.optimizer, multiplier, self.min_lr, self.max_lr, scheduler=scheduler)
        self.last_step = state.global_step
        if self._snapshot is not None:
            self._snapshot.take()  # the start of the next interval (after an undo: the retry, LR cut)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """A checkpoint between two evaluations gets the snapshot the next undo would restore."""
        if self._snapshot is not None and state.global_step != self.last_step and state.is_world_process_zero:
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if os.path.isdir(folder):
                torch.save(self._snapshot.state_dict(), os.path.join(folder, SNAPSHOT_FILE))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop acting: a later ``trainer.evaluate()`` must not move the LR."""
        self._active = False

    # -- helpers -------------------------------------------------------------------
    def _reset_controller(self, args: Any, state: Any, lr: float) -> None:
        if self.decisions_per_epoch is None:
            self.controller.reset(lr, self.total_epochs or _planned_evaluations(args, state), **self._told)
            return
        epochs = self.total_epochs or max(1, math.ceil(state.num_train_epochs or args.num_train_epochs))
        self.controller.reset(lr, epochs, self.decisions_per_epoch, **self._told)

    def _start_snapshots(self, args: Any, state: Any, model: Any, optimizer: Any) -> None:
        """Refuse or mask undo in a sharded run, then take the first snapshot (or load a resumed one)."""
        self._snapshot = None
        if not self.controller.may_undo:  # never undoes, or undo masked (undo=False, sharded before)
            return
        reason = _sharded_trainer(args, model, optimizer)
        if reason is not None and not prepare_undo(self.controller, can_rewind=False, owner=type(self).__name__,
                                                   why=f"cannot rewind a sharded run ({reason})"):
            return
        if model is None or optimizer is None:
            raise ValueError(f"{type(self).__name__} needs the Trainer's model and optimizer to undo")
        self._snapshot = IntervalSnapshot(model, [_unwrap_optimizer(optimizer)])
        saved = os.path.join(args.output_dir, f"checkpoint-{state.global_step}", SNAPSHOT_FILE)
        if state.global_step == self.last_step or not os.path.isfile(saved):
            if state.global_step != self.last_step:
                warnings.warn(f"resuming at step {state.global_step}, between two evaluations, without {saved}: "
                              "an undo of this interval rewinds to here", stacklevel=3)
            self._snapshot.take()  # at an evaluation (or a fresh start), the state now starts the interval
        else:
            self._snapshot.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))

    def _check_trainer(self, args: Any, scheduler: Any) -> None:
        strategy = _eval_strategy(args)
        if strategy == "no":
            raise ValueError(
                f"{type(self).__name__} acts after each evaluation, but eval_strategy is {strategy!r}: "
                "set eval_strategy='epoch' (or 'steps') and pass an eval_dataset"
            )
        kind = _value(getattr(args, "lr_scheduler_type", ""))
        if kind in _PLATEAU_TYPES or type(scheduler).__name__ in ("ReduceLROnPlateau", "GreedyLR"):
            raise ValueError(
                f"{type(self).__name__} replaces plateau-type scheduling, but the Trainer already uses "
                f"lr_scheduler_type={kind!r}: use 'constant' (full control) or another schedule"
            )
        if scheduler is None or not hasattr(scheduler, "base_lrs"):
            raise ValueError(
                f"{type(self).__name__} needs the Trainer's LR scheduler to have base_lrs, "
                f"got {type(scheduler).__name__}"
            )

    def _saved_in(self, state: Any) -> dict[str, Any] | None:
        """Our entry in a resumed TrainerState's ``stateful_callbacks`` (None on a fresh start)."""
        if state.global_step <= 0:
            return None
        entries = (state.stateful_callbacks or {}).get(type(self).__name__)
        entries = [e for e in (entries if isinstance(entries, list) else [entries])
                   if e and e.get("attributes", {}).get("saved_state")]
        same_spec = [e for e in entries if e.get("args", {}).get("controller") == self.controller.spec()]
        chosen = same_spec or entries  # a learned policy moved to another path keeps its hash
        return chosen[0]["attributes"]["saved_state"] if chosen else None


def _unwrap_optimizer(optimizer: Any) -> Any:
    """The optimizer inside accelerate's ``AcceleratedOptimizer`` (its Schedule-Free mode is readable there)."""
    return optimizer.optimizer if type(optimizer).__name__ == "AcceleratedOptimizer" else optimizer


def _sharded_trainer(args: Any, model: Any, optimizer: Any) -> str | None:
    """Why the Trainer's run is sharded (DeepSpeed, FSDP), or None."""
    if getattr(args, "deepspeed", None):
        return "args.deepspeed is set"
    if getattr(args, "fsdp", None):
        return f"args.fsdp is {args.fsdp!r}"
    return sharded_reason(model if isinstance(model, torch.nn.Module) else None,
                          [] if optimizer is None else [_unwrap_optimizer(optimizer)])


def _planned_evaluations(args: Any, state: Any) -> int:
    """How many evaluations the run will make: epochs, or max_steps // eval_steps."""
    if _eval_strategy(args) == "steps" and state.eval_steps and state.max_steps:
        return max(1, int(state.max_steps // state.eval_steps))
    epochs = state.num_train_epochs or args.num_train_epochs
    return max(1, math.ceil(epochs))


def _metrics_from(metrics: dict[str, float], log_history: list[dict[str, Any]],
                  since_step: int) -> dict[str, float | None]:
    """Controller metrics from an evaluation and the training loss logged since the last one acted on."""
    values: dict[str, float | None] = {}
    if metrics.get("eval_loss") is not None:
        values["val_loss"] = float(metrics["eval_loss"])
    if metrics.get("eval_accuracy") is not None:
        values["val_acc"] = float(metrics["eval_accuracy"])
    for name in EVIDENCE_METRICS:  # compute_metrics returned collapse_evidence(...): "eval_val_spread"...
        for key in (f"eval_{name}", f"eval_{name.removeprefix('val_')}"):
            if metrics.get(key) is not None:
                values[name] = float(metrics[key])
    for entry in reversed(log_history):
        if entry.get("step", since_step + 1) <= since_step:
            break  # older than the previous evaluation: stale
        if "loss" in entry and "eval_loss" not in entry:
            values["train_loss"] = float(entry["loss"])
            break
    return values
