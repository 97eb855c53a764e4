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

from lrpilot.controller.base import Controller
from lrpilot.integrations.scheduler import (
    check_bounds, check_total_epochs, build_epoch_metrics, check_identity, check_required, rescale_optimizer, resolve_controller,
)

__all__ = ["PolicyLRCallback"]

_PLATEAU_TYPES = ("reduce_lr_on_plateau", "greedy")


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


class PolicyLRCallback(TrainerCallback, ExportableState):
    """Apply a controller to a ``transformers.Trainer`` once per evaluation.

    Args:
        controller: a Controller, a spec string (``"rule"``, ``"policy:default"``) or a
            learned policy path.
        total_epochs: the number of evaluations the controller plans for; default
            ``args.num_train_epochs`` (with ``eval_strategy="steps"``: max_steps // eval_steps).
        min_lr: lower bound of the controlled (base) LR. Default: 0.
        max_lr: upper bound of the controlled (base) LR; None for no bound.

    Needs an eval strategy that evaluates (``"epoch"`` or ``"steps"``), one eval
    dataset, and a scheduler with ``base_lrs`` (every Trainer schedule except the
    plateau-type ones, which this callback refuses). For controllers that read
    ``train_loss`` (learned policies do), log the training loss at least once per
    evaluation, e.g. ``logging_strategy="epoch"``. To resume, pass the same
    controller; with ``restore_callback_states_from_checkpoint=True`` the Trainer
    rebuilds the callback from ``controller.spec()`` instead.

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
    ) -> None:
        check_bounds(min_lr, max_lr)
        check_total_epochs(total_epochs)
        self.controller = resolve_controller(controller)
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
                "min_lr": self.min_lr, "max_lr": self.max_lr}
        saved = None
        if self._active or self.last_step >= 0:
            saved = {"controller": self.controller.state_dict(),
                     "policy_hash": getattr(self.controller, "policy_hash", None), "last_step": self.last_step}
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
        else:
            if state.global_step > 0:
                warnings.warn(
                    f"resuming at step {state.global_step} without a saved {type(self).__name__} state: "
                    "the controller starts afresh", stacklevel=2,
                )
            self.controller.reset(float(scheduler.base_lrs[0]), self.total_epochs or _planned_evaluations(args, state))
            self.last_step = state.global_step
        self.saved_state = None
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
        values = _metrics_from(metrics or {}, state.log_history, since_step=self.last_step)
        check_required(self.controller, values, hint=(
            f"; evaluation metrics were {sorted(metrics or {})}. Log the training loss once per evaluation "
            "(e.g. logging_strategy='epoch') and give the Trainer an eval_dataset"))
        scheduler = _unwrap(kwargs.get("lr_scheduler"))
        epoch_metrics = build_epoch_metrics(values, self.controller.epochs_seen + 1, float(scheduler.base_lrs[0]))
        multiplier = self.controller.act(epoch_metrics)
        rescale_optimizer(scheduler.optimizer, multiplier, self.min_lr, self.max_lr, scheduler=scheduler)
        self.last_step = state.global_step

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop acting: a later ``trainer.evaluate()`` must not move the LR."""
        self._active = False

    # -- helpers -------------------------------------------------------------------
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
    for entry in reversed(log_history):
        if entry.get("step", since_step + 1) <= since_step:
            break  # older than the previous evaluation: stale
        if "loss" in entry and "eval_loss" not in entry:
            values["train_loss"] = float(entry["loss"])
            break
    return values
