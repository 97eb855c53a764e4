"""`ActionSpec`: how an agent's action becomes a learning-rate multiplier.

Shared by the environment (which applies the multiplier) and by deployed learned
controllers (which must map their network's output exactly as in training), and
written into every policy file.

* ``discrete``: action ``i`` multiplies the LR by ``multipliers[i]`` (default
  ×0.1, ×0.5, ×1, ×2).
* ``continuous``: an action ``a`` in ``[-1, 1]`` (values outside are clipped) maps
  log-linearly onto ``[min_multiplier, max_multiplier]`` (default 0.1..10, so
  ``a = 0`` keeps the LR): ``log m = log lo + (a + 1) / 2 * (log hi - log lo)``.
* ``undo=True`` (discrete sets only) adds one action after the multipliers, index
  ``len(multipliers)``, meaning :data:`~lrpilot.controller.base.UNDO`: rewind the run to the start
  of the interval that just ended and retry it with a cut LR. Written ``"0.1,0.5,1,2,undo"``.

Imports only ``math``, ``numpy`` and the :data:`~lrpilot.controller.base.UNDO` answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from lrpilot.controller.base import UNDO, Undo

__all__ = ["ActionSpec", "DEFAULT_MULTIPLIERS", "LR_BOUNDS"]

DEFAULT_MULTIPLIERS = (0.1, 0.5, 1.0, 2.0)
LR_BOUNDS = (1e-4, 100.0)
"""The LR range, relative to the initial LR, that the training environments keep an episode in
(``EnvConfig.lr_bounds``); a deployed learned policy keeps the LR there too, since it never saw
what lies beyond."""


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ActionSpec:
    """The action set: ``kind`` is ``"discrete"`` or ``"continuous"``."""

    kind: str = "discrete"
    """``discrete`` (index into ``multipliers``) or ``continuous`` (``Box[-1, 1]``)."""
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS
    """Discrete only: the LR multiplier of each action."""
    min_multiplier: float = 0.1
    """Continuous only: the multiplier at action -1."""
    max_multiplier: float = 10.0
    """Continuous only: the multiplier at action +1."""
    undo: bool = False
    """Discrete only: one more action, index ``len(multipliers)``, that answers :data:`UNDO`."""
    _log_range: tuple[float, float] = field(default=(0.0, 0.0), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("discrete", "continuous"):
            raise ValueError(f"action kind must be 'discrete' or 'continuous', got {self.kind!r}")
        if not isinstance(self.undo, bool):
            raise ValueError(f"undo must be True or False, got {self.undo!r}")
        if self.undo and self.kind != "discrete":
            raise ValueError("undo is an extra discrete action; a continuous action set cannot have it")
        if self.kind == "discrete":
            if not isinstance(self.multipliers, (tuple, list)) or len(self.multipliers) < 2:
                raise ValueError(f"multipliers must be a list of at least 2 numbers, got {self.multipliers!r}")
            values = tuple(_positive("each multiplier", m) for m in self.multipliers)
            object.__setattr__(self, "multipliers", values)
        else:
            lo = _positive("min_multiplier", self.min_multiplier)
            hi = _positive("max_multiplier", self.max_multiplier)
            if not lo < hi:
                raise ValueError(f"need min_multiplier < max_multiplier, got {lo} and {hi}")
            object.__setattr__(self, "_log_range", (math.log(lo), math.log(hi)))

    # -- construction ---------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> "ActionSpec":
        """``"0.1,0.5,1,2"`` (discrete; ``"0.1,0.5,1,2,undo"`` with the undo action), ``"continuous"``
        or ``"continuous:LO,HI"``."""
        text = text.strip()
        kind, _, rest = text.partition(":")
        items = [x.strip() for x in text.split(",")]
        try:
            if kind == "continuous":
                if not rest:
                    return cls(kind="continuous")
                lo, hi = (float(x) for x in rest.split(","))
                return cls(kind="continuous", min_multiplier=lo, max_multiplier=hi)
            undo = items[-1].lower() == "undo"
            return cls(kind="discrete", multipliers=tuple(float(x) for x in items[:-1 if undo else None]), undo=undo)
        except ValueError as exc:
            raise ValueError(f"bad action set {text!r} ({exc}); expected e.g. '0.1,0.5,1,2', '0.1,0.5,1,2,undo', "
                             "'continuous' or 'continuous:0.1,10'") from None

    def __str__(self) -> str:
        """The form :meth:`parse` reads."""
        if self.kind == "continuous":
            return f"continuous:{self.min_multiplier:g},{self.max_multiplier:g}"
        return ",".join([f"{m:g}" for m in self.multipliers] + (["undo"] if self.undo else []))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (policy files)."""
        if self.kind == "discrete":  # "undo" only when set, so cards without it are those of earlier versions
            return {"kind": "discrete", "multipliers": list(self.multipliers), **({"undo": True} if self.undo else {})}
        return {"kind": "continuous", "min_multiplier": self.min_multiplier, "max_multiplier": self.max_multiplier}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ActionSpec":
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on anything else."""
        if not isinstance(data, Mapping):
            raise ValueError(f"action spec must be an object, got {type(data).__name__}")
        kind = data.get("kind")
        if kind == "discrete":
            multipliers = data.get("multipliers")
            if not isinstance(multipliers, list):
                raise ValueError(f"discrete action spec needs a list 'multipliers', got {multipliers!r}")
            undo = data.get("undo", False)
            if not isinstance(undo, bool):
                raise ValueError(f"discrete action spec's 'undo' must be true or false, got {undo!r}")
            return cls(kind="discrete", multipliers=tuple(multipliers), undo=undo)
        if kind == "continuous":
            return cls(kind="continuous", min_multiplier=data.get("min_multiplier"),  # type: ignore[arg-type]
                       max_multiplier=data.get("max_multiplier"))  # type: ignore[arg-type]
        raise ValueError(f"action kind must be 'discrete' or 'continuous', got {kind!r}")

    # -- use --------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of network outputs: one logit per multiplier (and one for undo), or 1 (the mean action)."""
        return len(self.multipliers) + self.undo if self.kind == "discrete" else 1

    @property
    def undo_index(self) -> int | None:
        """The index of the undo action (``len(multipliers)``), or None without one."""
        return len(self.multipliers) if self.undo else None

    def is_undo(self, action: Any) -> bool:
        """True when ``action`` is the undo action (False for every action of a set without one)."""
        return self.undo and int(np.asarray(action).reshape(-1)[0]) == len(self.multipliers)

    def to_decision(self, action: Any) -> "float | Undo":
        """:data:`UNDO` for the undo action, else :meth:`to_multiplier`."""
        return UNDO if self.is_undo(action) else self.to_multiplier(action)

    def to_multiplier(self, action: Any) -> float:
        """The LR multiplier of ``action`` (an index, or a value in [-1, 1] clipped); the undo action has none
        (``ValueError``: see :meth:`to_decision`)."""
        if self.kind == "discrete":
            index = int(np.asarray(action).reshape(-1)[0])
            if self.undo and index == len(self.multipliers):
                raise ValueError(f"action {index} is undo, not a multiplier (use to_decision)")
            if not 0 <= index < self.size:
                raise ValueError(f"action must be in 0..{self.size - 1}, got {index}")
            return self.multipliers[index]
        value = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if math.isnan(value):
            raise ValueError(f"continuous action must be a number in [-1, 1], got {value}")
        a = min(max(value, -1.0), 1.0)
        lo, hi = self._log_range
        return math.exp(lo + (a + 1.0) / 2.0 * (hi - lo))
