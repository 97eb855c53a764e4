"""Any lrpilot controller in a Lightning ``Trainer``: a callback, or a scheduler.

Two forms:

1. :class:`PolicyLRCallback`, a ``lightning.pytorch.Callback`` that acts in
   ``on_validation_end`` (never during the sanity check, nor in a standalone
   ``trainer.validate()``), reading the metrics your module logged from
   ``trainer.callback_metrics``::

       trainer = L.Trainer(max_epochs=20, callbacks=[PolicyLRCallback("rule")])

2. :class:`~lrpilot.PolicyScheduler` returned from ``configure_optimizers`` as a
   plateau-type scheduler; Lightning then calls ``scheduler.step(val_loss)`` after each
   validation epoch (a bare number is ``val_loss``)::

       def configure_optimizers(self):
           opt = torch.optim.Adam(self.parameters(), lr=1e-3)
           sched = PolicyScheduler(opt, "rule", total_epochs=self.trainer.max_epochs)
           return {"optimizer": opt, "lr_scheduler": {
               "scheduler": sched, "monitor": "val_loss", "interval": "epoch", "reduce_on_plateau": True}}

   Controllers that need more than ``val_loss`` (learned policies read ``train_loss``
   too) need form 1, or a ``lr_scheduler_step`` override that passes a mapping.

A controller that may undo (``rule+guard``) needs form 1, which rewinds the module and its
optimizers in place. (Form 2 with ``PolicyScheduler(..., model=self)`` can rewind too, but Lightning
passes it only the monitored number, and ``+guard`` needs ``train_loss`` as well: use form 1, or a
``lr_scheduler_step`` override that passes a mapping.)

Lightning is an optional extra: ``pip install 'lrpilot[lightning]'``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import torch

try:
    import lightning.pytorch as pl
except ImportError as exc:
    raise ImportError(
        "lrpilot.integrations.lightning needs Lightning: pip install 'lrpilot[lightning]'"
    ) from exc

from lrpilot.controller.base import Controller, pretrained_flag
from lrpilot.integrations.rewind import IntervalSnapshot, UndoIntrospection, check_undo_factor, prepare_undo, sharded_reason
from lrpilot.integrations.scheduler import (
    ALLOWED_METRICS, build_epoch_metrics, check_bounds, check_total_epochs, check_identity, check_required, rescale_optimizer,
    resolve_controller,
)

__all__ = ["PolicyLRCallback"]


_MEASURED = ("train_loss", "train_loss_std")
"""Measured by the callback from ``training_step``'s returned loss, unless listed in ``monitor``."""


def _monitor_map(monitor: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``{metric name: logged key}``; a sequence of names reads each under its own name."""
    if isinstance(monitor, str):
        raise TypeError(f"monitor must be a sequence or mapping of metric names, got the string {monitor!r}")
    mapping = dict(monitor) if isinstance(monitor, Mapping) else {name: name for name in monitor}
    unknown = sorted(set(mapping) - set(ALLOWED_METRICS))
    if unknown or not mapping:
        raise ValueError(f"monitor names must be among {list(ALLOWED_METRICS)}, got {sorted(mapping) or 'none'}")
    return mapping


def _loss_of(outputs: Any) -> torch.Tensor | None:
    """The loss a ``training_step`` returned (a tensor or a dict with ``loss``), detached; else None."""
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
    if isinstance(loss, torch.Tensor) and loss.numel() == 1:
        return loss.detach().reshape(())
    return None


class PolicyLRCallback(UndoIntrospection, pl.Callback):
    """Apply a controller to a Lightning run after every validation.

    Args:
        controller: a Controller, a spec string (``"rule"``, ``"policy:default"``) or a
            learned policy path.
        monitor: the metrics to read from ``trainer.callback_metrics``: names among
            ``val_loss``, ``val_acc``, ``train_loss``, ``train_loss_std`` (read under the
            same key), or a mapping ``{name: logged key}``.
        total_epochs: the epochs the controller plans for (without ``decisions_per_epoch``: the
            number of validations); default
            ``trainer.max_epochs``.
        min_lr: lower bound of every group's LR. Default: 0.
        max_lr: upper bound of every group's LR; None for no bound.
        undo: let a controller that may undo rewind the module; False keeps no snapshots (a
            learned policy then never undoes, a ``+guard`` controller is refused). Default: True.
        undo_lr_factor: what an undo multiplies the restored LR by, in (0, 1]. Default: 0.1.
        decisions_per_epoch: validations per epoch (``val_check_interval=1/N``: N). Given, the
            controller plans ``total_epochs`` (default ``max_epochs``) epochs of N decisions each,
            its parameters in epochs; None (default): every validation counts as one epoch.
        pretrained: True when the module starts from pretrained weights (a fine-tune); the controller
            is told (``policy:default`` then spreads its raises over the epoch's decisions, as
            ``policy:finetune`` does; ``+guard`` also judges a whole epoch by how far it moved the weights).
            Default: False (a LightningModule does not say where its weights came from).

    ``train_loss`` and ``train_loss_std`` (mean and spread of the minibatch losses
    since the previous validation) are measured by the callback from the loss that
    ``training_step`` returns, because Lightning aggregates epoch-level *logged*
    training metrics only after validation: at ``on_validation_end`` a logged
    ``train_loss`` is still the previous epoch's. List them in ``monitor`` only to
    read a logged value instead. The controller's needs (``required_metrics``) are
    checked at construction.

    The multiplier scales every param group of every optimizer, and the ``base_lrs``
    of an attached scheduler so that it composes with it; a plateau-type scheduler
    (``reduce_on_plateau``) already in the run is refused at ``on_fit_start``. Each
    validation (several per epoch with ``val_check_interval < 1``) is one controller
    step. The state (the controller's, history included) is saved in Lightning
    checkpoints, so ``trainer.fit(ckpt_path=...)`` continues the same control.

    Undo: with a controller that may undo, the callback copies the module's and every optimizer's
    state when training starts and after every validation it acted on; on an undo it restores them
    in place, cuts the LR by ``undo_lr_factor`` and records the undo (:attr:`undone`). The loop's
    step and epoch counters, the data order, a gradient scaler and other callbacks' state go on.
    The snapshot is saved in Lightning checkpoints (a resumed run can still undo; the checkpoint
    holds the model and optimizer state twice). A DeepSpeed or FSDP strategy is refused for a
    controller whose purpose is to undo; a learned policy's undo is masked there (one warning).

    Example:
        >>> # xdoctest: +SKIP
        >>> trainer = L.Trainer(max_epochs=20, callbacks=[PolicyLRCallback("rule")])
        >>> trainer.fit(module)  # module logs "val_loss" in validation_step
    """

    def __init__(
        self,
        controller: Controller | str | os.PathLike[str],
        *,
        monitor: Sequence[str] | Mapping[str, str] = ("val_loss",),
        total_epochs: int | None = None,
        min_lr: float = 0.0,
        max_lr: float | None = None,
        undo: bool = True,
        undo_lr_factor: float = 0.1,
        decisions_per_epoch: int | None = None,
        pretrained: bool = False,
    ) -> None:
        check_bounds(min_lr, max_lr)
        check_total_epochs(total_epochs)
        self._told = pretrained_flag(pretrained)
        if not isinstance(undo, bool):
            raise ValueError(f"undo must be True or False, got {undo!r}")
        self.undo_lr_factor = check_undo_factor(undo_lr_factor)
        self.controller = resolve_controller(controller)
        prepare_undo(self.controller, can_rewind=undo, owner=type(self).__name__, why="was given undo=False",
                     warn=False)
        self._snapshot: IntervalSnapshot | None = None
        self._saved_snapshot: dict[str, Any] | None = None
        """A snapshot from a checkpoint, applied once the run's optimizers exist (at ``on_fit_start``)."""
        self.undone: list[int] = []
        """The decisions (1-based) that were undos."""
        self._last_undo = False
        self.monitor = _monitor_map(monitor)
        check_required(self.controller, {**dict.fromkeys(_MEASURED, 0.0), **self.monitor},
                       hint="; add them to monitor=(...)")
        self.total_epochs = total_epochs
        if decisions_per_epoch is not None and (isinstance(decisions_per_epoch, bool)
                                                or not isinstance(decisions_per_epoch, int) or decisions_per_epoch < 1):
            raise ValueError(f"decisions_per_epoch must be None or an integer >= 1, got {decisions_per_epoch!r}")
        self.decisions_per_epoch = decisions_per_epoch
        self.min_lr, self.max_lr = float(min_lr), (None if max_lr is None else float(max_lr))
        self._losses: list[torch.Tensor | float] = []
        """Minibatch losses since the last validation, kept as tensors (no device sync per batch)."""
        self._restored = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Refuse a plateau-type scheduler; start the controller unless a checkpoint restored it."""
        for config in trainer.lr_scheduler_configs:
            if config.reduce_on_plateau:
                raise ValueError(
                    f"{type(self).__name__} replaces plateau-type scheduling, but the run already has "
                    f"{type(config.scheduler).__name__} with reduce_on_plateau=True; use one or the other"
                )
        self._start_snapshots(trainer, pl_module)
        if self._restored:
            return
        total = self.total_epochs or trainer.max_epochs
        if total is None or total < 1:
            raise ValueError(f"set total_epochs: trainer.max_epochs is {trainer.max_epochs!r}")
        group = trainer.optimizers[0].param_groups[0]
        self.controller.reset(float(group.get("initial_lr", group["lr"])), int(total), self.decisions_per_epoch or 1,
                              **self._told)
        self._losses = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The first snapshot, once a resumed run's optimizer states are loaded (after ``on_fit_start``)."""
        if self._snapshot is not None and not self._snapshot.ready:
            self._snapshot.take()

    def _start_snapshots(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Refuse or mask undo under a sharding strategy; set up the snapshot (a checkpoint's, if any)."""
        self._snapshot, saved, self._saved_snapshot = None, self._saved_snapshot, None
        if not self.controller.may_undo:
            return
        strategy = type(trainer.strategy).__name__
        reason = (f"strategy {strategy}" if any(k in strategy.lower() for k in ("deepspeed", "fsdp"))
                  else sharded_reason(pl_module, trainer.optimizers))
        if reason is not None and not prepare_undo(self.controller, can_rewind=False, owner=type(self).__name__,
                                                   why=f"cannot rewind a sharded run ({reason})"):
            return
        self._snapshot = IntervalSnapshot(pl_module, trainer.optimizers)
        if saved is not None:
            self._snapshot.load_state_dict(saved)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        """Record the minibatch loss (undoing Lightning's division by accumulate_grad_batches)."""
        loss = _loss_of(outputs)
        if loss is not None:
            self._losses.append(loss * trainer.accumulate_grad_batches)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Feed this validation's metrics to the controller and rescale every optimizer."""
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        values = self._with_weight_change({**self._measured(), **self._read(trainer.callback_metrics)})
        check_required(self.controller, values, hint="; training_step must return the loss")
        schedulers = {id(c.scheduler.optimizer): c.scheduler for c in trainer.lr_scheduler_configs
                      if hasattr(c.scheduler, "base_lrs")}
        first = trainer.optimizers[0]
        anchor = schedulers.get(id(first))
        lr = float(anchor.base_lrs[0]) if anchor is not None else float(first.param_groups[0]["lr"])
        decision = self.controller.act(build_epoch_metrics(values, self.controller.epochs_seen + 1, lr))
        multiplier = self._carry_out(decision)
        for optimizer in trainer.optimizers:
            rescale_optimizer(optimizer, multiplier, self.min_lr, self.max_lr, scheduler=schedulers.get(id(optimizer)))
        self._losses = []
        if self._snapshot is not None:
            self._snapshot.take()  # the start of the next interval (after an undo: the retry, LR cut)

    def _measured(self) -> dict[str, float | None]:
        if not self._losses:
            return {}
        losses = torch.tensor([float(x) for x in self._losses], dtype=torch.float64)
        std = float(losses.std(unbiased=False)) if len(losses) > 1 and bool(losses.isfinite().all()) else 0.0
        return {"train_loss": float(losses.mean()), "train_loss_std": std}

    def _read(self, logged: Mapping[str, Any]) -> dict[str, float | None]:
        missing = [key for key in self.monitor.values() if key not in logged]
        if missing:
            raise ValueError(
                f"{type(self).__name__}: monitored metric(s) {missing} not logged; trainer.callback_metrics has "
                f"{sorted(logged)}. Log them with self.log(...) in validation_step"
            )
        return {name: float(logged[key]) for name, key in self.monitor.items()}

    def state_dict(self) -> dict[str, Any]:
        """The controller's whole state and identity, the losses since the last validation (plain values),
        the undo history and, while undo is on, the snapshot (tensors)."""
        return {"controller": self.controller.state_dict(),
                "policy_hash": getattr(self.controller, "policy_hash", None),
                "losses": [float(x) for x in self._losses],
                "undo": {"undone": list(self.undone), "last_undo": self._last_undo,
                         "snapshot": self._snapshot.state_dict() if self._snapshot is not None else None}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; ValueError for another controller or policy."""
        self.controller.load_state_dict(check_identity(self.controller, state_dict))
        self._losses = [float(x) for x in state_dict.get("losses", [])]
        undo = state_dict.get("undo", {})
        self.undone = [int(i) for i in undo.get("undone", [])]
        self._last_undo = bool(undo.get("last_undo", False))
        self._saved_snapshot = undo.get("snapshot")
        self._restored = True
