"""`Task`: a named training recipe (model + data + loss + optimiser defaults), and the registry.

The registry knows no task by itself: :mod:`lrpilot.training.builtin` registers the built-in
tasks, and the package imports it (``lrpilot/training/__init__.py``) before any of its modules
can be used, so ``get_task`` finds them however this module was reached. The modules that define
tasks (``digits.py``, ``vision.py``, ``synthetic.py``...) import only :class:`Task` from here, and
this module imports none of them: the imports run one way, with no cycle.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    import torch

    from lrpilot.training.data import DataSplits

__all__ = ["Task", "register_task", "get_task", "list_tasks", "OPTIMIZERS", "LR_FREE_DEFAULT_LR"]

OPTIMIZERS = ("adam", "adamw", "sgd", "prodigy", "schedulefree-adamw")
"""Optimisers every task accepts (``sgd`` uses momentum 0.9; the last two need ``lrpilot[lrfree]``)."""

LR_FREE_DEFAULT_LR = {"prodigy": 1.0, "schedulefree-adamw": 0.0025}
"""Learning-rate-free optimisers and their packages' recommended LR, used unless a run sets ``lr``."""


@dataclass(frozen=True)
class Task:
    """A named recipe. Built-ins follow the seed plan; override any field per run.

    ``load_data(task, data_dir)`` returns fixed train / val / test splits (val carved from
    the official train split, never depending on the run's seed); ``build_model(task, data)``
    returns a freshly initialised model whose forward maps a batch's inputs to logits.
    """

    name: str
    """Registry name, e.g. ``digits-cnn``."""
    load_data: Callable[["Task", str | None], "DataSplits"]
    """Loads the three splits; ``data_dir`` is a local copy (``datasets.save_to_disk`` format) or None."""
    build_model: Callable[["Task", "DataSplits"], "torch.nn.Module"]
    """Builds a freshly initialised model (called under the run's seed)."""
    description: str = ""
    """One line for ``lrpilot tasks``."""
    optimizer: str = "adam"
    """One of ``OPTIMIZERS``."""
    lr: float = 1e-3
    """Initial learning rate."""
    batch_size: int = 64
    """Training minibatch size."""
    epochs: int = 50
    """Epoch budget."""
    weight_decay: float = 0.0
    """Weight decay (decoupled for AdamW)."""
    eval_batch_size: int = 512
    """Minibatch size for validation and test (no gradients)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Task-specific settings (model name, max sequence length, sizes...)."""
    pretrained: bool = False
    """The model starts from pretrained weights (a fine-tune, e.g. BERT); see :meth:`starts_pretrained`."""

    def starts_pretrained(self) -> bool:
        """Whether the run fine-tunes pretrained weights: :attr:`pretrained`, or a synthetic fine-tune
        (``options["pretrain"]`` > 0, :mod:`lrpilot.training.finetune`). Runs tell their controller
        (``Controller.reset(..., pretrained=True)``)."""
        return bool(self.pretrained) or bool(self.options.get("pretrain"))

    def with_overrides(self, **overrides: Any) -> "Task":
        """A copy with fields changed; unknown names go into ``options`` only if already there.

        Switching to a learning-rate-free optimiser without giving ``lr`` takes that
        optimiser's recommended LR (1.0 for Prodigy), not the task's Adam LR.
        """
        known = {f.name for f in dataclasses.fields(self)} - {"name", "load_data", "build_model", "options"}
        fields_: dict[str, Any] = {}
        options = dict(self.options)
        for key, value in overrides.items():
            if value is None:
                continue
            if key in known:
                fields_[key] = value
            elif key in options:
                options[key] = value
            else:
                allowed = sorted(known | set(options))
                raise ValueError(f"task {self.name!r} has no setting {key!r}; allowed: {', '.join(allowed)}")
        if fields_.get("optimizer") in LR_FREE_DEFAULT_LR and "lr" not in fields_:
            fields_["lr"] = LR_FREE_DEFAULT_LR[fields_["optimizer"]]
        task = dataclasses.replace(self, options=options, **fields_)
        task.validate()
        return task

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        for key in ("lr", "weight_decay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite_float(value):
                raise ValueError(f"{key} must be a finite number, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        for key in ("batch_size", "epochs", "eval_batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if not isinstance(self.pretrained, bool):
            raise ValueError(f"pretrained must be True or False, got {self.pretrained!r}")


def _finite_float(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float range
        return False


_TASKS: dict[str, Task] = {}


def register_task(task: Task, *, overwrite: bool = False) -> Task:
    """Add ``task`` to the registry so ``get_task(task.name)`` and the CLI find it."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task takes a Task, got {type(task).__name__}")
    task.validate()
    if task.name in _TASKS and not overwrite:
        raise ValueError(f"task {task.name!r} is already registered (pass overwrite=True to replace it)")
    _TASKS[task.name] = task
    return task


def get_task(name: str | Task) -> Task:
    """The registered task called ``name`` (a Task passes through)."""
    if isinstance(name, Task):
        return name
    if name not in _TASKS:
        close = difflib.get_close_matches(str(name), _TASKS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown task {name!r}{hint}; known: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


def list_tasks() -> list[Task]:
    """Every registered task, sorted by name."""
    return [_TASKS[k] for k in sorted(_TASKS)]
