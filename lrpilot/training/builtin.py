"""Registers the built-in tasks.

``lrpilot/training/__init__.py`` imports this module, so the built-ins are in the registry
before any module of the package runs; the registry (:mod:`lrpilot.training.task`) does not
import this module, and the modules that define the tasks import only ``Task``.
"""

from lrpilot.training.digits import DIGITS_CNN, DIGITS_MLP
from lrpilot.training.heldout import HELDOUT_TASKS, VALIDATION_TASKS
from lrpilot.training.synthetic import SYNTHETIC_TASKS
from lrpilot.training.task import Task, register_task
from lrpilot.training.text import IMDB_BERT
from lrpilot.training.vision import CIFAR10_RESNET18

__all__ = ["BUILTIN_TASKS"]

BUILTIN_TASKS: tuple[Task, ...] = (DIGITS_MLP, DIGITS_CNN, CIFAR10_RESNET18, IMDB_BERT, *SYNTHETIC_TASKS,
                                   *HELDOUT_TASKS, *VALIDATION_TASKS)
"""Every built-in task, in registration order."""

for _task in BUILTIN_TASKS:
    register_task(_task, overwrite=True)
