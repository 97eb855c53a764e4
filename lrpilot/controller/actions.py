"""`ActionSpec`: how an agent's action becomes a learning-rate multiplier.

Shared by the environment (which applies the multiplier) and by deployed learned
controllers (which must map their network's output exactly as in training), and
written into every policy file.

* ``discrete``: action ``i`` multiplies the LR by ``multipliers[i]`` (default
  ×0.1, ×0.5, ×1, ×2).
* ``continuous``: an action ``a`` in ``[-1, 1]`` (values outside are clipped) maps
  log-linearly onto ``[min_multiplier, max_multiplier]`` (default 0.1..10, so
  ``a = 0`` keeps the LR): ``log m = log lo + (a + 1) / 2 * (log hi - log lo)``.

Imports only ``math`` and ``numpy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

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
    _log_range: tuple[float, float] = field(default=(0.0, 0.0), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("discrete", "continuous"):
            raise ValueError(f"action kind must be 'discrete' or 'continuous', got {self.kind!r}")
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
        """``"0.1,0.5,1,2"`` (discrete), ``"continuous"`` or ``"continuous:LO,HI"``."""
        text = text.strip()
        kind, _, rest = text.partition(":")
        try:
            if kind == "continuous":
                if not rest:
                    return cls(kind="continuous")
                lo, hi = (float(x) for x in rest.split(","))
                return cls(kind="continuous", min_multiplier=lo, max_multiplier=hi)
            return cls(kind="discrete", multipliers=tuple(float(x) for x in text.split(",")))
        except ValueError as exc:
            raise ValueError(f"bad action set {text!r} ({exc}); expected e.g. '0.1,0.5,1,2', 'continuous' "
                             "or 'continuous:0.1,10'") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (policy files)."""
        if self.kind == "discrete":
            return {"kind": "discrete", "multipliers": list(self.multipliers)}
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
            return cls(kind="discrete", multipliers=tuple(multipliers))
        if kind == "continuous":
            return cls(kind="continuous", min_multiplier=data.get("min_multiplier"),  # type: ignore[arg-type]
                       max_multiplier=data.get("max_multiplier"))  # type: ignore[arg-type]
        raise ValueError(f"action kind must be 'discrete' or 'continuous', got {kind!r}")

    # -- use --------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of network outputs: one logit per multiplier, or 1 (the mean action)."""
        return len(self.multipliers) if self.kind == "discrete" else 1

    def to_multiplier(self, action: Any) -> float:
        """The LR multiplier of ``action`` (an index, or a value in [-1, 1] clipped)."""
        if self.kind == "discrete":
            index = int(np.asarray(action).reshape(-1)[0])
            if not 0 <= index < len(self.multipliers):
                raise ValueError(f"action must be in 0..{len(self.multipliers) - 1}, got {index}")
            return self.multipliers[index]
        value = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if math.isnan(value):
            raise ValueError(f"continuous action must be a number in [-1, 1], got {value}")
        a = min(max(value, -1.0), 1.0)
        lo, hi = self._log_range
        return math.exp(lo + (a + 1.0) / 2.0 * (hi - lo))
