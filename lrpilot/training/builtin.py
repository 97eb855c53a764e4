"""Registers the built-in tasks (imported lazily by the registry)."""

from lrpilot.training.digits import DIGITS_CNN, DIGITS_MLP
from lrpilot.training.task import register_task

for _task in (DIGITS_MLP, DIGITS_CNN):
    register_task(_task, overwrite=True)
