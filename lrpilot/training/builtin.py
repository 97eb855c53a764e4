"""Registers the built-in tasks (imported lazily by the registry)."""

from lrpilot.training.digits import DIGITS_CNN, DIGITS_MLP
from lrpilot.training.heldout import HELDOUT_TASKS
from lrpilot.training.synthetic import SYNTHETIC_TASKS
from lrpilot.training.task import register_task
from lrpilot.training.text import IMDB_BERT
from lrpilot.training.vision import CIFAR10_RESNET18

for _task in (DIGITS_MLP, DIGITS_CNN, CIFAR10_RESNET18, IMDB_BERT, *SYNTHETIC_TASKS, *HELDOUT_TASKS):
    register_task(_task, overwrite=True)
