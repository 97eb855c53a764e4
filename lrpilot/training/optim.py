"""Optimiser construction from a task's settings."""

from __future__ import annotations

import torch

from lrpilot.training.loading import require
from lrpilot.training.task import OPTIMIZERS, Task

__all__ = ["build_optimizer", "optimizer_mode", "is_schedule_free"]


def build_optimizer(task: Task, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The task's optimiser over the model's trainable parameters, at the task's initial LR."""
    params = [p for p in model.parameters() if p.requires_grad]
    name, lr, wd = task.optimizer, task.lr, task.weight_decay
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    if name == "prodigy":
        return require("prodigyopt", "lrfree").Prodigy(params, lr=lr, weight_decay=wd)
    if name == "schedulefree-adamw":
        return require("schedulefree", "lrfree").AdamWScheduleFree(params, lr=lr, weight_decay=wd)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")


def optimizer_mode(optimizer: torch.optim.Optimizer, *, train: bool) -> None:
    """Switch optimisers that keep separate train/eval weights (Schedule-Free); others ignore it."""
    method = getattr(optimizer, "train" if train else "eval", None)
    if callable(method):
        method()


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    """True for optimisers that evaluate at different weights than they train (Schedule-Free)."""
    return callable(getattr(optimizer, "eval", None)) and callable(getattr(optimizer, "train", None))
