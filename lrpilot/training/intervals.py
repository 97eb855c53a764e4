"""Control intervals: how often a run reports its metrics and takes a decision.

One epoch is the default (the seed plan). An :class:`Interval` is either a fraction of an epoch
(``0.25``: four decisions per epoch) or a number of optimizer steps (``"50steps"``). Interval
boundaries fall on batch boundaries and never cross an epoch's end:

* a fraction ``f`` cuts each epoch of ``B`` batches into ``n = min(B, round(1 / f))`` intervals
  (``f`` is rounded to the nearest ``1/n``: 0.3 acts like 1/3); interval ``i`` (0-based) ends after
  ``floor((i + 1) * B / n)`` batches, so interval lengths differ by at most one batch;
* ``s`` steps cut each epoch into ``n = ceil(B / s)`` intervals of ``s`` batches, the last one
  shorter when ``s`` does not divide ``B``.

The number of decisions per epoch is therefore fixed for a task, and the budget, in epochs,
allows ``epochs * n`` decisions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Interval", "EPOCH"]

_STEPS = re.compile(r"^\s*(\d+)\s*steps?\s*$")


@dataclass(frozen=True)
class Interval:
    """A fraction of an epoch (``fraction``) or a number of optimizer steps (``steps``); one is None."""

    fraction: float | None = 1.0
    steps: int | None = None

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.steps is None):
            raise ValueError("an interval is a fraction of an epoch or a number of steps, not both or neither")
        if self.fraction is not None and (isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float))
                                          or not (0 < self.fraction <= 1)):
            raise ValueError(f"interval must be a fraction of an epoch in (0, 1] or 'Nsteps', got {self.fraction!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or self.steps < 1):
            raise ValueError(f"interval steps must be an integer >= 1, got {self.steps!r}")

    @classmethod
    def parse(cls, value: "str | float | int | Interval | None") -> "Interval":
        """``"0.25"``, ``0.25``, ``1``, ``"50steps"`` (or ``"50 steps"``), an Interval, or None (one epoch).

        Raises ``ValueError`` with one line naming what is accepted.
        """
        if value is None:
            return EPOCH
        if isinstance(value, Interval):
            return value
        if isinstance(value, str):
            match = _STEPS.match(value)
            if match:
                return cls(fraction=None, steps=int(match.group(1)))
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"interval must be a fraction of an epoch in (0, 1] (e.g. 0.25) or a number of "
                                 f"optimizer steps (e.g. 50steps), got {value!r}") from None
            return cls(fraction=number)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise ValueError(f"interval must be a fraction of an epoch in (0, 1] or 'Nsteps', got {_short(value)}")
        return cls(fraction=float(value))

    @property
    def is_epoch(self) -> bool:
        """True for the default: one decision per epoch."""
        return self.fraction == 1.0

    def per_epoch(self, batches: int) -> int:
        """Intervals (decisions) per epoch of ``batches`` minibatches."""
        if batches < 1:
            raise ValueError(f"an epoch needs at least one batch, got {batches}")
        if self.steps is not None:
            return math.ceil(batches / self.steps)
        return max(1, min(batches, round(1 / self.fraction)))

    def boundaries(self, batches: int) -> list[int]:
        """The batch counts (1-based, within an epoch) after which each interval ends; the last is ``batches``."""
        n = self.per_epoch(batches)
        if self.steps is not None:
            return [min((i + 1) * self.steps, batches) for i in range(n)]
        return [(i + 1) * batches // n for i in range(n)]

    def __str__(self) -> str:
        return f"{self.steps}steps" if self.steps is not None else f"{self.fraction:g}"


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


EPOCH = Interval()
"""One decision per epoch."""
