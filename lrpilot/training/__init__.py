"""Training core: tasks, data, and `TrainingSession`. Knows nothing of controllers or envs."""

from lrpilot.training.session import TrainingSession
from lrpilot.training.task import Task, get_task, list_tasks, register_task

__all__ = ["Task", "TrainingSession", "get_task", "list_tasks", "register_task"]
