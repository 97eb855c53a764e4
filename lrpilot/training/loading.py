"""Loading a task's data once per process, and the offline rules for hub downloads."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrpilot.training.data import DataSplits
    from lrpilot.training.task import Task

__all__ = ["load_splits", "clear_cache", "hub_reachable", "OfflineDataError", "require"]

_CACHE: dict[tuple, "DataSplits"] = {}


class OfflineDataError(RuntimeError):
    """Data or a model is not available locally and the hub cannot be reached."""


def load_splits(task: "Task", data_dir: str | None) -> "DataSplits":
    """The task's splits, loaded once per process for the same task settings and data_dir."""
    key = (task.name, data_dir, repr(sorted(task.options.items())))
    if key not in _CACHE:
        _CACHE[key] = task.load_data(task, data_dir)
    return _CACHE[key]


def clear_cache() -> None:
    """Forget every loaded dataset (frees memory)."""
    _CACHE.clear()


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """False when offline mode is set or ``host`` cannot be reached within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    if os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def require(module: str, extra: str | None = None):  # noqa: ANN201 - returns the module
    """Import an optional dependency, or fail with the pip command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        hint = f"pip install 'lrpilot[{extra}]'" if extra else f"pip install {module}"
        raise ImportError(f"{module} is required for this feature; install it with: {hint}") from None
