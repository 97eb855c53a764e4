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
    from lrpilot.integrations.scheduler import PolicyScheduler
    from lrpilot.training import TrainingSession


def __getattr__(name: str) -> Any:
    """The public names, each imported on first use (``import lrpilot`` stays cheap)."""
    if name == "PolicyScheduler":
        from lrpilot.integrations.scheduler import PolicyScheduler

        return PolicyScheduler
    if name == "TrainingSession":
        from lrpilot.training import TrainingSession

        return TrainingSession
    if name in ("from_spec", "load_policy"):
        from lrpilot import controller

        return getattr(controller, name)
    raise AttributeError(f"module 'lrpilot' has no attribute {name!r}")
