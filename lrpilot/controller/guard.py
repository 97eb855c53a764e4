"""``X+guard``: undo an interval that diverged or collapsed, and let the controller X decide the rest.

:class:`Guard` wraps any controller (``rule+guard``, ``bold+guard``, ``plateau:patience=2+guard``,
``cosine+guard``, ``policy:default+guard``, ``policy:PATH+guard``). After every interval it answers
:data:`~lrpilot.controller.base.UNDO` when the interval

* **diverged** (:func:`diverged`): the run flagged it (``EpochMetrics.diverged``: non-finite loss or
  weights, or the validation loss 10 times chance level, see ``lrpilot.training.divergence``), its
  training or validation loss is not finite, or it blew up (:func:`exploded`: the validation loss or
  the interval's mean training loss at least 3 times chance level with an accuracy no better than
  the majority class's); or
* **collapsed** (:func:`collapsed`): the model has stopped discriminating. All four signs are needed:
  nearly every validation prediction falls in one class (``val_top_share`` >= :data:`COLLAPSE_TOP_SHARE`),
  the classes are balanced enough for that to be wrong (``val_majority_share`` <=
  :data:`COLLAPSE_MAX_MAJORITY_SHARE`), the validation loss is at chance level (``val_loss`` >=
  :data:`COLLAPSE_CHANCE_RATIO` × ``val_chance_loss``), and the output has stopped depending on the
  input: ``val_spread`` fell below :data:`COLLAPSE_SPREAD_RATIO` (a quarter) of the largest spread of
  the run's healthy intervals so far, the spread of the untrained model (``val_spread_start``) included. The last sign
  separates a collapse from a run that has not learned yet at a too-small LR: its predictions may
  also sit in one class with the loss at chance (a pretrained BERT with a fresh head does, at every
  LR, for the first quarter epoch), but its outputs vary with the input as much as the untrained
  model's did, or more; a collapsed model's outputs are the same for every input (measured in
  docs/controller.md, "The guard"). Where no reference is known (no ``val_spread_start``, or a reference
  of 0), the spread must be below :data:`COLLAPSE_MAX_SPREAD`. A run that says its model is pretrained
  (``reset(..., pretrained=True)``) and decides once per epoch has a second way in (:func:`wrecked`):
  the first three signs after an interval that moved the weights by at least :data:`WRECKED_WEIGHT_CHANGE`
  of their norm (``EpochMetrics.weight_change``). After a whole epoch a fine-tune ruined by its LR can keep
  an output spread like the untrained model's, where the spread sign lets it through; one at a too-small
  LR that still predicts one class has barely moved.

Otherwise the inner controller decides. What an undo does to the inner controller and to the LR:

* **The inner controller never sees an undone interval**: it is not called for it, so its state
  (history, best loss, clock) stays that of before the interval, as the model's does. A schedule's
  clock therefore lags the run's by the number of undos.
* **The cut persists.** The driver retries the interval at a cut LR (×0.1 by default); the guard
  learns the cut from the LR of the next interval (:attr:`Guard.scale`, the product of the cuts:
  real LR / the LR the inner controller believes) and shows the inner controller metrics whose
  ``lr`` is divided by it. A schedule such as ``cosine``, which returns target / current LR, then
  follows its own curve a factor ``scale`` lower instead of climbing straight back.
* **Rewinding to the last interval that learned** (runs that keep several snapshots: ``lrpilot
  train``, ``compare``, ``evaluate-controller``; :meth:`Guard.allow_rewind`). An interval *learned* when
  its validation accuracy beats always predicting the majority class by :data:`LEARNED_ACC_MARGIN`
  (:func:`learned`). When a bad interval follows intervals that were let through without learning,
  their damage may have come before the evidence did (a pretrained model ruined in its first quarter
  epoch looks like an untrained one until the next quarter collapses it), so the guard answers
  ``Undo(intervals=k)``: rewind the bad interval and the k - 1 unlearned ones before it (at most
  ``max_rewind`` intervals in all; up to the start of the run when nothing has learned yet), and
  retry at the bad interval's LR, cut. The inner controller is rolled back with the model (its state
  before the first rewound interval). After an interval that learned, the reach is one interval again,
  and a driver keeps one snapshot (:attr:`Guard.undo_reach`). Drivers that keep one snapshot (the
  deployed forms) get one-interval undos.
* **Two cuts for a thrashed interval.** When a collapsed or blown-up interval's mean training loss was
  at least :data:`THRASHED_LOSS_RATIO` times chance (:func:`thrashed`: the optimisation was thrown
  about during the interval, not merely settled at chance), the guard answers ``Undo(cuts=2)``: the
  driver cuts the LR twice (a hundredth with the default ×0.1). One cut from such an LR only
  collapses the run again one interval later: per epoch, ``minilm-sentiment`` at 1e-2 collapsed at
  1e-2 and again at its retry at 1e-3, and spent 2 of its 5 epochs on undos (docs/controller.md,
  "Two cuts for a thrashed interval"). Measured per epoch over 6 seeds: mean training loss 1.63 to
  2.18 times chance at 1e-2, 1.01 to 1.03 at 1e-3, where one cut is enough. A run-flagged divergence
  (non-finite loss or weights, validation loss 10 times chance), and a quiet collapse, get one cut.
* **No raise back into the trouble.** After an undo of a bad interval at LR ``L``, the guard lets
  the inner controller raise the LR no higher than :data:`RAISE_CEILING` × ``L`` (the lowest such
  ``L`` of the run; about 0.32 ``L``, the midpoint on a log scale between the LR that went bad and the
  default retry LR ``0.1 L``) for the rest of the run (:attr:`Guard.ceiling`). Cuts and holds pass
  unchanged, and an LR already above the ceiling (a retry cut milder than ×0.32) is never forced down.
  Without it a controller that raises the LR (``bold``, a learned policy acting every quarter epoch)
  climbs straight back to the LR that collapsed the run and spends the guard's undos on it.
* **No endless loop.** After ``max_undos`` undos in a row the guard stops undoing: it lets the inner
  controller decide every bad interval (a diverged one then ends the run), counts them in
  :attr:`Guard.gave_up` and warns once per run, until an interval is healthy (neither diverged nor
  collapsed); that interval resets the count of undos in a row and re-arms the guard. (Re-arming at
  the first interval let through instead would spend ``max_undos`` of every ``max_undos + 1``
  intervals of a collapse that cuts cannot cure on undos.)

Imports only the standard library (deployment stays light).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, ClassVar

from lrpilot.controller.base import Controller, Undo, pretrained_flag
from lrpilot.metrics import EpochMetrics

__all__ = ["Guard", "GUARD_SUFFIX", "collapsed", "diverged", "COLLAPSE_TOP_SHARE", "COLLAPSE_MAX_MAJORITY_SHARE",
           "COLLAPSE_CHANCE_RATIO", "COLLAPSE_SPREAD_RATIO", "COLLAPSE_MAX_SPREAD", "exploded", "EXPLODED_LOSS_RATIO",
           "EXPLODED_ACC_MARGIN", "learned", "thrashed", "THRASHED_LOSS_RATIO", "LEARNED_ACC_MARGIN",
           "RAISE_CEILING", "one_class_at_chance", "wrecked", "WRECKED_WEIGHT_CHANGE"]

GUARD_SUFFIX = "+guard"
"""The spec suffix that wraps a controller in a :class:`Guard`."""

EXPLODED_LOSS_RATIO = 3.0
"""An interval whose validation loss is this many times the chance-level loss ..."""
EXPLODED_ACC_MARGIN = 0.05
"""... and whose accuracy is at most the majority-class share plus this has blown up (:func:`exploded`)."""
LEARNED_ACC_MARGIN = 0.05
"""An interval *learned* (:func:`learned`) when its validation accuracy is at least the majority-class
share plus this."""
RAISE_CEILING = 10 ** -0.5
"""After an undo of a bad interval at LR ``L``, the inner controller may raise the LR to at most this
times ``L`` (:attr:`Guard.ceiling`)."""
COLLAPSE_TOP_SHARE = 0.95
"""Collapse needs at least this share of the validation predictions in the most predicted class."""
COLLAPSE_MAX_MAJORITY_SHARE = 0.8
"""... while the most common true class holds at most this share (otherwise one class is right)."""
COLLAPSE_CHANCE_RATIO = 0.95
"""... the validation loss is at least this fraction of the chance-level loss ``val_chance_loss`` ..."""
COLLAPSE_SPREAD_RATIO = 0.25
"""... and ``val_spread`` (how much the output depends on the input) is below this fraction of the
largest spread of the run so far, the untrained model's included. Measured (docs/controller.md, "The
guard"): collapsed runs of the small tasks 0.0; MiniLM collapsed at LR 1e-3 0.0006 against 0.0057
untrained (0.1) and at 1e-2 3e-6; MiniLM at 1e-5 and 1e-4, which have not learned yet after a quarter
epoch, 1.0x to 2.9x the untrained spread."""
THRASHED_LOSS_RATIO = 1.3
"""A bad interval *thrashed* (:func:`thrashed`; the guard then cuts twice) when its mean training loss was at
least this many times the chance-level loss. Measured on ``minilm-sentiment`` per epoch, seeds 0-5
(docs/controller.md): 1.63 to 2.18 after the first epoch at LR 1e-2, 1.01 to 1.03 at 1e-3; the small
tasks' blow-ups at LR 0.1 and above, 4.6 and more. The threshold sits near the geometric midpoint of 1.03
and 1.63. A first rule, an output spread below 0.0025 of the reference, was dropped: at 1e-3 one seed's
first epoch left a spread of 7e-5 of it, and its retry at 1e-5 never learned (57.2% against 89.8%)."""
WRECKED_WEIGHT_CHANGE = 10 ** -1.75
"""On a pretrained model deciding once per epoch, an interval that shows the first three signs of collapse and
moved the weights by at least this share of their norm (``EpochMetrics.weight_change``, about 0.018) collapsed
(:func:`wrecked`). Measured on MiniLM's first epoch under Adam (docs/controller.md, "The guard"): 0.0005 to 0.0006
at LR 1e-5 (where four seeds of twelve predict one class at chance and then learn), 0.0052 to 0.0058 at 1e-4, 0.052
to 0.054 at 1e-3 (where two seeds of six keep an untrained model's output spread while predicting one class); the
threshold sits near the geometric midpoint of 0.0057 and 0.053 (session 14's two seeds, from which it was set). Not
used on models trained from scratch, whose healthy first quarters move as far (0.043 to 0.88 of their norm, ibid.),
nor with shorter intervals, where the spread sign catches the damage while it shows."""
COLLAPSE_MAX_SPREAD = 1e-3
"""Without a reference spread (no ``val_spread_start``: metrics from elsewhere than a run that can
undo), ``val_spread`` must be below this absolute value. Measured on the small real tasks: collapsed
runs 0.0; runs at a too-small LR 0.0075 (digits-cnn) to 0.06."""


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def diverged(metrics: EpochMetrics) -> bool:
    """The interval diverged: the run flagged it, its training or validation loss is not finite, or the model
    blew up without the run's rule noticing (:func:`exploded`)."""
    return bool(metrics.diverged) or not (_finite(metrics.train_loss) and _finite(metrics.val_loss)) or exploded(metrics)


def exploded(metrics: EpochMetrics) -> bool:
    """The validation loss or the interval's mean training loss is far above chance level (at least
    :data:`EXPLODED_LOSS_RATIO` times ``val_chance_loss``) while the validation accuracy is no better than
    always predicting the majority class (within :data:`EXPLODED_ACC_MARGIN`): the optimisation blew up in
    the interval, even if the weights it ended with score near chance. A run's own divergence rule waits for
    10 times chance on the validation loss; a model that overfits (confident on the examples it gets wrong,
    loss above chance) still scores well above the majority rate and is not taken for one. False when a field
    is missing."""
    evidence = (metrics.val_loss, metrics.val_chance_loss, metrics.val_acc, metrics.val_majority_share)
    if not all(_finite(value) for value in evidence):
        return False
    loss = max(metrics.val_loss, metrics.train_loss) if _finite(metrics.train_loss) else metrics.val_loss
    return (loss >= EXPLODED_LOSS_RATIO * metrics.val_chance_loss  # type: ignore[operator]
            and metrics.val_acc <= metrics.val_majority_share + EXPLODED_ACC_MARGIN)  # type: ignore[operator]


def learned(metrics: EpochMetrics) -> bool:
    """The model does better than always predicting the majority class: validation accuracy at least
    ``val_majority_share`` + :data:`LEARNED_ACC_MARGIN`. True without a majority share (metrics from a
    driver that does not measure it; the guard then rewinds one interval at a time); False for an
    interval without a finite accuracy in a run that measures it."""
    if not _finite(metrics.val_majority_share):
        return True
    margin = metrics.val_majority_share + LEARNED_ACC_MARGIN  # type: ignore[operator]
    return _finite(metrics.val_acc) and metrics.val_acc >= margin  # type: ignore[operator]


def one_class_at_chance(metrics: EpochMetrics) -> bool:
    """The first three signs of collapse (module docstring): nearly every validation prediction in one class, classes
    balanced enough for that to be wrong, the validation loss at chance level. A run that has not learned yet shows
    them too; :func:`collapsed` adds the output-spread sign. False when a field is missing or not finite."""
    evidence = (metrics.val_top_share, metrics.val_majority_share, metrics.val_chance_loss, metrics.val_loss)
    if not all(_finite(value) for value in evidence):
        return False
    return (metrics.val_top_share >= COLLAPSE_TOP_SHARE  # type: ignore[operator]
            and metrics.val_majority_share <= COLLAPSE_MAX_MAJORITY_SHARE  # type: ignore[operator]
            and metrics.val_loss >= COLLAPSE_CHANCE_RATIO * metrics.val_chance_loss)  # type: ignore[operator]


def collapsed(metrics: EpochMetrics, reference_spread: float | None = None) -> bool:
    """The model has stopped discriminating (module docstring; every threshold is a named constant).

    ``reference_spread`` is the largest ``val_spread`` of the run so far (default: the metrics'
    ``val_spread_start``); without one, the absolute :data:`COLLAPSE_MAX_SPREAD` applies.
    False when any of ``val_top_share``, ``val_majority_share``, ``val_chance_loss``, ``val_spread``
    or ``val_loss`` is missing or not finite: collapse is then not judged.

    Example:
        >>> m = EpochMetrics(epoch=1, lr=1e-3, train_loss=0.7, val_loss=0.693, val_top_share=1.0,
        ...                  val_majority_share=0.51, val_chance_loss=0.693, val_spread=0.0)
        >>> collapsed(m), collapsed(dataclasses.replace(m, val_spread=0.5))
        (True, False)
    """
    if not (_finite(metrics.val_spread) and one_class_at_chance(metrics)):
        return False
    if reference_spread is None:
        reference_spread = metrics.val_spread_start
    relative = _finite(reference_spread) and reference_spread > 0  # type: ignore[operator]
    limit = COLLAPSE_SPREAD_RATIO * reference_spread if relative else COLLAPSE_MAX_SPREAD  # type: ignore[operator]
    return metrics.val_spread < limit  # type: ignore[operator]


def wrecked(metrics: EpochMetrics) -> bool:
    """The first three signs of collapse (:func:`one_class_at_chance`) after an interval that moved the weights by
    at least :data:`WRECKED_WEIGHT_CHANGE` of their norm. :class:`Guard` applies it to a run that says its model is
    pretrained and decides once per epoch. False when ``weight_change`` is missing.

    Example:
        >>> m = EpochMetrics(epoch=1, lr=1e-3, train_loss=0.70, val_loss=0.696, val_top_share=1.0,
        ...                  val_majority_share=0.51, val_chance_loss=0.693, weight_change=0.053)
        >>> wrecked(m), wrecked(dataclasses.replace(m, weight_change=0.0006))
        (True, False)
    """
    moved = metrics.weight_change
    return _finite(moved) and moved >= WRECKED_WEIGHT_CHANGE and one_class_at_chance(metrics)  # type: ignore[operator]


def thrashed(metrics: EpochMetrics, reference_spread: float | None = None, *,
             quiet: bool | None = None) -> bool:
    """The interval collapsed (:func:`collapsed`, judged against ``reference_spread``) or blew up
    (:func:`exploded`), and its mean training loss was at least :data:`THRASHED_LOSS_RATIO` times the
    chance-level loss: the LR threw the optimisation about rather than letting it settle at chance, and
    the guard cuts it twice. False when the run flagged the interval as diverged (a non-finite loss or
    weight) or a field is missing. ``quiet`` is the guard's own verdict on a collapse, where it judges more than
    :func:`collapsed` does (default: :func:`collapsed`).

    Example:
        >>> m = EpochMetrics(epoch=1, lr=1e-2, train_loss=1.49, val_loss=0.70, val_top_share=1.0,
        ...                  val_majority_share=0.51, val_chance_loss=0.693, val_spread=9e-8, val_spread_start=0.0057)
        >>> thrashed(m), thrashed(dataclasses.replace(m, train_loss=0.71))
        (True, False)
    """
    if metrics.diverged or not (_finite(metrics.train_loss) and _finite(metrics.val_chance_loss)):
        return False
    if quiet is None:
        quiet = collapsed(metrics, reference_spread)
    if not (quiet or exploded(metrics)):
        return False
    return metrics.train_loss >= THRASHED_LOSS_RATIO * metrics.val_chance_loss  # type: ignore[operator]


class Guard(Controller):
    """Wrap ``inner``: undo an interval that diverged or collapsed, let ``inner`` decide otherwise.

    ``may_undo`` is True and cannot be switched off (``undo_optional`` is False): a driver that
    cannot rewind the run must refuse it. ``reset`` resets ``inner`` with the same arguments;
    ``state_dict`` nests ``inner``'s state under ``"inner"``. ``max_undos`` (undos in a row before
    the guard gives up until a healthy interval) and ``max_rewind`` (the most intervals one undo
    rewinds, when the driver allows it) are set in Python only; the spec string ``X+guard`` uses the
    defaults.

    Attributes (state): ``scale`` (real LR / the LR ``inner`` believes: the product of the cuts),
    ``undos`` (undos this run), ``undos_in_row`` (since the last healthy interval), ``gave_up`` (bad
    intervals left to ``inner`` after ``max_undos`` undos in a row), ``expected_lr`` (the LR of the interval last undone, until
    the retry's metrics arrive), ``unproven`` (intervals let through since the last one that learned),
    and the inner controller's state before each of them (to roll it back with a deeper undo).

    Example:
        >>> from lrpilot.controller import from_spec
        >>> g = from_spec("cosine+guard"); g.reset(1e-3, 10)
        >>> g.act(EpochMetrics(epoch=1, lr=1e-3, train_loss=float("nan"), diverged=True))
        UNDO
    """

    name: ClassVar[str] = "guard"
    _state_keys: ClassVar[tuple[str, ...]] = ("scale", "undos", "undos_in_row", "gave_up", "expected_lr", "max_spread",
                                             "unproven", "ceiling")
    may_undo = True
    undo_optional = False

    def __init__(self, inner: Controller, max_undos: int = 3, max_rewind: int = 4) -> None:
        super().__init__()
        if not isinstance(inner, Controller):
            raise TypeError(f"Guard wraps a Controller, got {type(inner).__name__}")
        if isinstance(inner, Guard):
            raise ValueError(f"controller {inner.spec()!r} is already guarded")
        if isinstance(max_undos, bool) or not isinstance(max_undos, int) or max_undos < 1:
            raise ValueError(f"Guard: max_undos must be an integer >= 1, got {max_undos!r}")
        if isinstance(max_rewind, bool) or not isinstance(max_rewind, int) or max_rewind < 1:
            raise ValueError(f"Guard: max_rewind must be an integer >= 1, got {max_rewind!r}")
        self.inner = inner
        self.max_undos = max_undos
        self.max_rewind = max_rewind
        self.rewind_limit = 1  # until the driver allows more (allow_rewind)
        # judging divergence reads both losses: a caller that omits one must be told, not undone forever
        self.required_metrics = tuple(dict.fromkeys((*inner.required_metrics, "train_loss", "val_loss")))
        self._reset()

    def spec(self) -> str:
        return self.inner.spec() + GUARD_SUFFIX

    @property
    def reads_pretrained(self) -> bool:
        """True: on a pretrained model deciding once per epoch the guard also judges how far an epoch moved the
        weights (:func:`wrecked`); and the inner controller is told too."""
        return True

    @property
    def policy_hash(self) -> str:
        """The inner learned policy's hash (AttributeError when the inner controller is not one)."""
        return self.inner.policy_hash  # type: ignore[attr-defined]

    def reset(self, initial_lr: float, total_epochs: int, decisions_per_epoch: int = 1, *,
              pretrained: bool = False) -> None:
        super().reset(initial_lr, total_epochs, decisions_per_epoch, pretrained=pretrained)
        self.inner.reset(initial_lr, total_epochs, decisions_per_epoch, **pretrained_flag(pretrained))

    def allow_rewind(self, intervals: int) -> None:
        super().allow_rewind(intervals)
        self.rewind_limit = min(intervals, self.max_rewind)

    @property
    def undo_reach(self) -> int:
        """1 + the unlearned intervals let through that a deeper undo would also rewind (capped by
        the driver's limit): the interval starts the driver must keep."""
        return 1 + min(self.unproven, len(self._rollback), self.rewind_limit - 1)

    def _reset(self) -> None:
        self.unproven = 0
        self._rollback: list[list[Any]] = []  # [inner state, max_spread] before each unproven interval
        self.scale = 1.0
        self.undos = 0
        self.undos_in_row = 0
        self.gave_up = 0
        self.expected_lr: float | None = None
        self.ceiling: float | None = None
        self.max_spread: float | None = None  # the largest val_spread seen (val_spread_start included)

    def _act(self, metrics: EpochMetrics) -> float | Undo:
        self._learn_cut(metrics)
        reference = self._reference_spread(metrics)
        quiet = collapsed(metrics, reference) or (self.pretrained and self.decisions_per_epoch == 1
                                                  and wrecked(metrics))
        bad = diverged(metrics) or quiet
        if bad and self.undos_in_row < self.max_undos:
            if _finite(metrics.lr) and metrics.lr > 0:
                self.ceiling = metrics.lr if self.ceiling is None else min(self.ceiling, metrics.lr)
            return self._undo(metrics, cuts=2 if thrashed(metrics, reference, quiet=quiet) else 1)
        if bad:
            self._give_up(metrics)
        deeper = self.rewind_limit > 1 and not learned(metrics)  # only then can a later undo reach before it
        before = [self.inner.state_dict(), self.max_spread] if deeper else None
        decision = self.inner.act(self._shown(metrics))
        if isinstance(decision, Undo):  # an inner controller that may undo (a learned policy) undid
            return self._undo(metrics, deep=False)
        if not bad:
            self.undos_in_row = 0  # a healthy interval re-arms the guard
            self._remember_spread(metrics)
        self._let_through(metrics, before)
        return self._capped(decision, metrics)

    def _capped(self, multiplier: float, metrics: EpochMetrics) -> float:
        """``multiplier``, lowered so that a raise stops at :data:`RAISE_CEILING` × :attr:`ceiling`
        (never below 1: an LR already above it is held, not cut)."""
        if self.ceiling is None or not multiplier > 1.0 or not (_finite(metrics.lr) and metrics.lr > 0):
            return multiplier
        return max(1.0, min(multiplier, RAISE_CEILING * self.ceiling / metrics.lr))

    def _let_through(self, metrics: EpochMetrics, before: list[Any] | None) -> None:
        """Count an interval that stays in the run: after one that learned, nothing before it is rewound
        again; otherwise remember the inner state before it, for a deeper undo."""
        if before is None:  # it learned (or the driver keeps one snapshot): nothing before it is rewound again
            self.unproven, self._rollback = 0, []
            return
        self.unproven += 1
        self._rollback.append(before)
        extra = len(self._rollback) - (self.rewind_limit - 1)
        if extra > 0:
            del self._rollback[:extra]

    def _reference_spread(self, metrics: EpochMetrics) -> float | None:
        """The largest spread of the untrained model and of the healthy intervals before this one."""
        seen = [v for v in (self.max_spread, metrics.val_spread_start) if _finite(v)]
        return max(seen) if seen else None

    def _remember_spread(self, metrics: EpochMetrics) -> None:
        """A healthy interval's spread joins the reference (a bad one's never does)."""
        seen = [v for v in (self.max_spread, metrics.val_spread_start, metrics.val_spread) if _finite(v)]
        self.max_spread = max(seen) if seen else None

    def _undo(self, metrics: EpochMetrics, deep: bool = True, cuts: int = 1) -> Undo:
        """Undo this interval and, when ``deep``, the unlearned ones let through before it (rolling the
        inner controller back to its state before the first of them)."""
        intervals = self.undo_reach if deep else 1
        if intervals > 1:
            state, self.max_spread = self._rollback[-(intervals - 1)]
            self.inner.load_state_dict(state)
            del self._rollback[-(intervals - 1):]
            self.unproven -= intervals - 1
        self.undos += 1
        self.undos_in_row += 1
        self.expected_lr = metrics.lr
        return Undo(intervals, cuts)

    def _learn_cut(self, metrics: EpochMetrics) -> None:
        """After an undo: fold the driver's cut (retry LR / undone LR) into :attr:`scale`."""
        expected, self.expected_lr = self.expected_lr, None
        if expected is not None and _finite(expected) and expected > 0 and _finite(metrics.lr) and metrics.lr > 0:
            self.scale *= metrics.lr / expected

    def _shown(self, metrics: EpochMetrics) -> EpochMetrics:
        """``metrics`` as the inner controller believes them: its own LR, without the cuts."""
        return metrics if self.scale == 1.0 else dataclasses.replace(metrics, lr=metrics.lr / self.scale)

    def _give_up(self, metrics: EpochMetrics) -> None:
        self.gave_up += 1
        if self.gave_up == 1:
            warnings.warn(f"{self.spec()}: interval {metrics.epoch} is still bad after {self.max_undos} undos in a "
                          f"row; until an interval is healthy the guard lets {self.inner.spec()!r} decide "
                          "(counted in gave_up)", stacklevel=4)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "inner": self.inner.state_dict(),
                **({"rollback": [list(entry) for entry in self._rollback]} if self._rollback else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "inner" not in state:
            raise ValueError(f"state for {self.spec()!r} has no 'inner' controller state")
        # saved before deeper undos: none unproven; before the ceiling: none
        super().load_state_dict({"unproven": 0, "ceiling": None, **state})
        self.inner.load_state_dict(state["inner"])
        self.scale = float(self.scale)
        self.expected_lr = None if self.expected_lr is None else float(self.expected_lr)
        self.ceiling = None if self.ceiling is None else float(self.ceiling)
        self.max_spread = state.get("max_spread")
        self.unproven = int(self.unproven)
        self._rollback = [list(entry) for entry in state.get("rollback", [])]
