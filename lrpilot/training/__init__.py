"""Training core: tasks, data, and `TrainingSession`. Knows nothing of controllers or envs."""

from lrpilot.training import builtin as _builtin  # noqa: F401  (registers the built-in tasks, before anything else runs)
from lrpilot.training.divergence import DivergenceRule
from lrpilot.training.session import TrainingSession
from lrpilot.training.task import Task, get_task, list_tasks, register_task

__all__ = ["DivergenceRule", "Task", "TrainingSession", "get_task", "list_tasks", "register_task"]
