"""lrpilot: learning-rate control. A run reports metrics each epoch; a controller answers with an LR multiplier.

Importing ``lrpilot`` is cheap: heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["EpochMetrics", "PolicyScheduler", "TrainingSession", "from_spec", "load_policy", "__version__"]

from lrpilot.metrics import EpochMetrics

if TYPE_CHECKING:
    from lrpilot.controller import from_spec, load_policy
    from lrpilot.controller.scheduler import PolicyScheduler
    from lrpilot.training import TrainingSession

_LAZY = {
    "PolicyScheduler": "lrpilot.controller.scheduler",
    "TrainingSession": "lrpilot.training",
    "from_spec": "lrpilot.controller",
    "load_policy": "lrpilot.controller",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lrpilot' has no attribute {name!r}")
