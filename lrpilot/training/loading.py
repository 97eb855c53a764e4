"""Loading a task's data once per process, and the offline rules for hub downloads."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrpilot.training.data import DataSplits
    from lrpilot.training.task import Task

__all__ = ["load_splits", "clear_cache", "hub_reachable", "OfflineDataError", "require", "load_dataset_dict", "hf_offline"]

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



def hf_offline() -> bool:
    """True when the user asked the Hugging Face libraries to work from the local cache only."""
    flags = (os.environ.get(k, "0") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(flag not in ("0", "", "false", "False") for flag in flags)


def load_dataset_dict(hub_id: str, data_dir: str | None, splits: tuple[str, ...] = ("train", "test")):  # noqa: ANN201
    """The ``splits`` of ``hub_id`` as a ``datasets.DatasetDict``, never waiting on an unreachable hub.

    ``data_dir`` (a ``DatasetDict.save_to_disk`` copy) wins; otherwise the hub when it answers,
    or the local Hugging Face cache when ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE`` is set;
    otherwise :class:`OfflineDataError` saying what to download and where to put it.
    """
    datasets = require("datasets")
    if data_dir is not None:
        dd = _load_from_disk(datasets, hub_id, str(data_dir), splits)
    elif hub_reachable():
        dd = datasets.load_dataset(hub_id)
    else:
        dd = _load_offline(datasets, hub_id)
    missing = [s for s in splits if s not in dd]
    if missing:
        raise ValueError(f"dataset {hub_id!r} has splits {sorted(dd)}; needs {list(splits)}")
    return datasets.DatasetDict({s: dd[s] for s in splits})


def _load_from_disk(datasets, hub_id: str, data_dir: str, splits: tuple[str, ...]):  # noqa: ANN001, ANN202
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data_dir {data_dir!r} is not a directory")
    try:
        dd = datasets.load_from_disk(data_dir)
    except FileNotFoundError as err:
        raise ValueError(f"data_dir {data_dir!r} is not a datasets save_to_disk copy of {hub_id!r}: {err}") from None
    if not isinstance(dd, datasets.DatasetDict):
        raise ValueError(
            f"data_dir {data_dir!r} holds a single Dataset; expected a DatasetDict with splits {list(splits)} "
            f"(datasets.load_dataset('{hub_id}').save_to_disk(DIR))"
        )
    return dd


def _load_offline(datasets, hub_id: str):  # noqa: ANN001, ANN202
    """From the local Hugging Face cache when offline mode is set (never touches the network)."""
    cause: Exception | None = None
    if hf_offline():
        try:
            return datasets.load_dataset(hub_id)
        except Exception as err:  # noqa: BLE001 - any cache miss becomes the one clear error below
            cause = err
    raise OfflineDataError(
        f"dataset {hub_id!r} is not available offline (no data_dir, hub unreachable, not in the HF cache): "
        f"on a machine with internet run python -c \"import datasets; datasets.load_dataset('{hub_id}')"
        f".save_to_disk('DIR')\", copy DIR here and pass --data-dir DIR (TrainingSession(..., data_dir=DIR))"
    ) from cause
