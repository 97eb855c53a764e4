"""Learning-rate controllers: the protocol, the rules, the teachers, the classic schedules, the
``+guard`` wrapper and specs.

Imports only torch-free modules here; learned policies load lazily via ``policy:...``.
"""

from lrpilot.controller.base import UNDO, Controller
from lrpilot.controller.guard import Guard, collapsed
from lrpilot.controller.rules import Bold, Plateau, Rule
from lrpilot.controller.schedules import Constant, Cosine, Step
from lrpilot.controller.spec import from_spec, list_controllers, register_controller
from lrpilot.controller.teachers import FeatureTeacher

__all__ = [
    "Controller", "UNDO", "Constant", "Step", "Cosine", "Plateau", "Rule", "Bold", "FeatureTeacher", "Guard", "collapsed",
    "from_spec", "list_controllers", "register_controller", "load_policy",
]


def load_policy(path_or_name: str):  # noqa: ANN201 - returns LearnedController, imported lazily
    """Load a learned policy file (``NAME.safetensors`` + ``NAME.json``) or a shipped name."""
    from lrpilot.controller.policy import load_policy as _load

    return _load(path_or_name)
