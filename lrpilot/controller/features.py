"""`ObservationEncoder`: the one mapping from a metrics history to an observation vector.

The Gymnasium environment and every deployed learned controller call the same
encoder, and every policy file records its name, version and feature list, so a
policy never silently reads features it was not trained on. Every feature is
scale-free (log-ratios, relative changes, fractions of the budget), so a policy
learned on small tasks can be applied to large ones.

Conventions:

* ``t`` is the epoch that just ended (the last entry of the history); "first" is
  the first epoch of the run (the reference for loss ratios).
* Every feature is clipped to its documented ``[low, high]`` (see :data:`FEATURES`).
* A non-finite input (NaN or infinite loss, LR or accuracy) never produces NaN: a
  loss-derived feature reads as its **high** clip value (an exploded loss is the
  worst case), an LR-derived or accuracy-derived feature reads as 0, and the flag
  ``nonfinite`` is 1. A loss that does not exist yet (the change at the first
  epoch, history before the start) reads as 0.
* Tasks without accuracy: ``val_acc`` and ``val_acc_change`` are 0 and ``has_acc`` is 0.

Versions (:data:`ENCODER_VERSIONS`): version 1 (:data:`FEATURES`, the default; the shipped policy
reads it) and version 2, which appends :data:`BUDGET_FEATURES`: the budget's size in decisions
(``log_budget``, ``log_decisions_left``; version 1 shows only the fraction spent, ``progress``), the
``undone`` flag of the last interval and the fraction of the budget undone so far. Undone intervals
stay in the history a controller is shown, marked ``undone``; their metrics are those of the
discarded state. A policy file names its version, and loads with that version's encoder.

Imports only ``math`` and ``numpy`` (deployment stays light).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from lrpilot.controller.base import Controller
from lrpilot.metrics import EpochMetrics

__all__ = ["Feature", "FEATURES", "FEATURE_INDEX", "BUDGET_FEATURES", "ENCODER_VERSIONS", "ObservationEncoder",
           "HISTORY", "ObservingController"]

HISTORY = 3
"""Epochs of history (before ``t``) of the key loss features."""


@dataclass(frozen=True)
class Feature:
    """One entry of the observation vector."""

    name: str
    """Stable identifier written into policy files."""
    low: float
    """Clip minimum."""
    high: float
    """Clip maximum."""
    description: str
    """What it measures."""


def _history_features() -> list[Feature]:
    out = []
    for k in range(1, HISTORY + 1):
        out.append(Feature(f"val_loss_log_change_lag{k}", -3.0, 3.0, f"val_loss_log_change at epoch t-{k} (0 before the start)"))
        out.append(Feature(f"train_loss_log_change_lag{k}", -3.0, 3.0, f"train_loss_log_change at epoch t-{k} (0 before the start)"))
    return out


FEATURES: tuple[Feature, ...] = (
    Feature("progress", 0.0, 1.0, "epochs done / epoch budget"),
    Feature("log_lr_ratio", -12.0, 12.0, "log(lr of epoch t / initial LR)"),
    Feature("log_lr_change", -12.0, 12.0, "log(lr of epoch t / lr of epoch t-1); 0 at the first epoch"),
    Feature("log_train_loss_ratio", -10.0, 5.0, "log(train_loss_t / first train_loss)"),
    Feature("log_val_loss_ratio", -10.0, 5.0, "log(val_loss_t / first val_loss)"),
    Feature("train_loss_log_change", -3.0, 3.0, "log(train_loss_t / train_loss_t-1), the relative change; 0 at the first epoch"),
    Feature("val_loss_log_change", -3.0, 3.0, "log(val_loss_t / val_loss_t-1), the relative change; 0 at the first epoch"),
    Feature("generalization_gap", -5.0, 5.0, "log(val_loss_t / train_loss_t), the generalisation gap"),
    Feature("train_loss_noise", 0.0, 5.0, "train_loss_std_t / train_loss_t (minibatch spread)"),
    Feature("val_acc", 0.0, 1.0, "validation accuracy at t (0 without accuracy)"),
    Feature("val_acc_change", -1.0, 1.0, "val_acc_t - val_acc_t-1 (0 at the first epoch or without accuracy)"),
    Feature("has_acc", 0.0, 1.0, "1 when the task reports accuracy"),
    Feature("since_best_val_loss", 0.0, 1.0, "epochs since the lowest val_loss / epoch budget"),
    Feature("since_lr_change", 0.0, 1.0, "epochs since the LR last changed (or the start) / epoch budget"),
    *_history_features(),
    Feature("nonfinite", 0.0, 1.0, "1 when a loss, LR or accuracy of epoch t is NaN or infinite"),
)
"""The observation of version 1, in order. Changing it means a new version in :data:`ENCODER_VERSIONS`."""

FEATURE_INDEX: Mapping[str, int] = MappingProxyType({f.name: i for i, f in enumerate(FEATURES)})
"""Position of each feature in the observation vector, by name (read-only). Version 2 appends its
features after version 1's, so these positions hold in both."""

BUDGET_FEATURES: tuple[Feature, ...] = (
    Feature("log_decisions_left", 0.0, 7.0, "log(1 + decisions left in the budget after t)"),
    Feature("log_budget", 0.0, 7.0, "log(budget in decisions)"),
    Feature("undone", 0.0, 1.0, "1 when interval t was undone (the run was rewound to its start)"),
    Feature("undone_fraction", 0.0, 1.0, "intervals undone so far / budget"),
)
"""What version 2 adds: how large the budget is, not only how much of it is spent, and undo."""

ENCODER_VERSIONS: Mapping[int, tuple[Feature, ...]] = MappingProxyType({1: FEATURES, 2: FEATURES + BUDGET_FEATURES})
"""The features of each encoder version. Version 1 is the default and what the shipped policy reads;
several versions live side by side, and a policy file names the one it was trained with."""


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _log_ratio(a: float | None, b: float | None) -> float | None:
    """log(a/b) for positive finite a, b; None when undefined (non-finite or <= 0)."""
    if _finite(a) and _finite(b) and a > 0 and b > 0:  # type: ignore[operator]
        return math.log(a / b)  # type: ignore[operator]
    return None


class ObservationEncoder:
    """Maps ``(history, initial_lr, total_epochs)`` to a float32 vector of :data:`FEATURES`.

    Stateless and cheap (a few microseconds per call for a 50-epoch history), so the
    environment and deployed controllers re-encode the whole history every epoch.

    Example:
        >>> enc = ObservationEncoder()
        >>> obs = enc.encode([EpochMetrics(epoch=1, lr=1e-3, train_loss=2.0, val_loss=1.8, val_acc=0.4)], 1e-3, 10)
        >>> obs.shape == (len(FEATURES),), obs.dtype.name
        (True, 'float32')
    """

    name = "lrpilot-obs"
    """Encoder identifier, recorded in policy files."""

    def __init__(self, version: int = 1) -> None:
        if isinstance(version, bool) or not isinstance(version, int) or version not in ENCODER_VERSIONS:
            raise ValueError(f"encoder version must be one of {', '.join(map(str, ENCODER_VERSIONS))}, got {version!r}")
        self.version = int(version)
        """Bumped whenever a feature's meaning, order or range changes (:data:`ENCODER_VERSIONS`)."""
        self.features = ENCODER_VERSIONS[self.version]
        self.low = np.array([f.low for f in self.features], dtype=np.float32)
        self.high = np.array([f.high for f in self.features], dtype=np.float32)
        self._index = {f.name: i for i, f in enumerate(self.features)}
        self._high = {f.name: f.high for f in self.features}
        self._i_nonfinite = self._index["nonfinite"]
        self._i_splits = tuple((self._index[f"log_{split}_loss_ratio"], self._high[f"log_{split}_loss_ratio"],
                                self._index[f"{split}_loss_log_change"], self._high[f"{split}_loss_log_change"])
                               for split in ("train", "val"))
        self._i_lags = tuple((self._index[f"val_loss_log_change_lag{k}"], self._high[f"val_loss_log_change_lag{k}"],
                              self._index[f"train_loss_log_change_lag{k}"], self._high[f"train_loss_log_change_lag{k}"])
                             for k in range(1, HISTORY + 1))

    @classmethod
    def from_description(cls, recorded: Mapping[str, Any]) -> "ObservationEncoder":
        """The encoder a policy file names (:meth:`describe`); ``ValueError`` naming what does not match."""
        version = recorded.get("version") if isinstance(recorded, Mapping) else None
        if isinstance(version, bool) or not isinstance(version, int) or version not in ENCODER_VERSIONS:
            raise ValueError(f"encoder version mismatch: file has {version!r}, this lrpilot has "
                             f"{', '.join(map(str, ENCODER_VERSIONS))}")
        encoder = cls(version)
        encoder.check_compatible(recorded)
        return encoder

    @property
    def size(self) -> int:
        """Length of the observation vector."""
        return len(self.features)

    @property
    def feature_names(self) -> list[str]:
        """Feature names in order."""
        return [f.name for f in self.features]

    def describe(self) -> dict[str, Any]:
        """Name, version and feature list, as written into policy files."""
        return {"name": self.name, "version": self.version, "features": self.feature_names}

    def check_compatible(self, recorded: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the difference when ``recorded`` is not this encoder."""
        mine = self.describe()
        for key in ("name", "version", "features"):
            if recorded.get(key) != mine[key]:
                raise ValueError(f"encoder {key} mismatch: file has {recorded.get(key)!r}, this lrpilot has {mine[key]!r}")

    def encode(self, history: Sequence[EpochMetrics], initial_lr: float, total_epochs: int) -> np.ndarray:
        """The observation after the last epoch of ``history`` (at least one epoch)."""
        if not history:
            raise ValueError("encode() needs a history of at least one epoch, got an empty one")
        if not (_finite(initial_lr) and initial_lr > 0):
            raise ValueError(f"initial_lr must be a finite number > 0, got {initial_lr!r}")
        if isinstance(total_epochs, bool) or not isinstance(total_epochs, int) or total_epochs < 1:
            raise ValueError(f"total_epochs must be an integer >= 1, got {total_epochs!r}")
        values = [0.0] * len(self.features)
        flags = self._current(history, initial_lr, total_epochs, values)
        self._lags(history, values)
        values[self._i_nonfinite] = 1.0 if flags else 0.0
        if self.version >= 2:
            self._budget(history, total_epochs, values)
        out = np.array(values, dtype=np.float32)
        return np.minimum(np.maximum(out, self.low, out=out), self.high, out=out)  # np.clip, in place

    # -- pieces (the environment and the population's twins call encode() for every member at every
    # decision, so these index ``values`` by position rather than by name) ---------------
    def _current(self, history: Sequence[EpochMetrics], initial_lr: float, total: int, values: list[float]) -> bool:
        """Fill every feature of epoch t; True when an input was non-finite."""
        i, high = self._index, self._high
        first, last = history[0], history[-1]
        prev = history[-2] if len(history) > 1 else None
        nonfinite = not (_finite(last.train_loss) and _finite(last.val_loss) and _finite(last.lr))
        nonfinite = nonfinite or (last.val_acc is not None and not _finite(last.val_acc))
        values[i["progress"]] = len(history) / total
        value = _log_ratio(last.lr, initial_lr)
        values[i["log_lr_ratio"]] = 0.0 if value is None else value
        value = _log_ratio(last.lr, prev.lr) if prev else 0.0
        values[i["log_lr_change"]] = 0.0 if value is None else value
        for (ratio_at, ratio_high, change_at, change_high), cur, ref, before in (
                (self._i_splits[0], last.train_loss, first.train_loss, prev and prev.train_loss),
                (self._i_splits[1], last.val_loss, first.val_loss, prev and prev.val_loss)):
            value = _log_ratio(cur, ref)
            values[ratio_at] = ratio_high if value is None else value
            value = _log_ratio(cur, before) if prev is not None else 0.0
            values[change_at] = change_high if value is None else value
        value = _log_ratio(last.val_loss, last.train_loss)
        values[i["generalization_gap"]] = high["generalization_gap"] if value is None else value
        noise = last.train_loss_std / last.train_loss if _finite(last.train_loss_std) and _finite(last.train_loss) \
            and last.train_loss > 0 else None
        values[i["train_loss_noise"]] = high["train_loss_noise"] if noise is None else noise
        self._accuracy(last, prev, values)
        values[i["since_best_val_loss"]] = self._since_best(history) / total
        values[i["since_lr_change"]] = self._since_lr_change(history) / total
        return nonfinite

    def _accuracy(self, last: EpochMetrics, prev: EpochMetrics | None, values: list[float]) -> None:
        if last.val_acc is None:
            return  # val_acc, val_acc_change and has_acc stay 0
        values[self._index["has_acc"]] = 1.0
        if not _finite(last.val_acc):
            return
        values[self._index["val_acc"]] = float(last.val_acc)
        if prev is not None and _finite(prev.val_acc):
            values[self._index["val_acc_change"]] = float(last.val_acc) - float(prev.val_acc)  # type: ignore[arg-type]

    def _lags(self, history: Sequence[EpochMetrics], values: list[float]) -> None:
        t = len(history) - 1
        for k, (val_at, val_high, train_at, train_high) in enumerate(self._i_lags, start=1):
            if t - k <= 0:
                continue  # before the start, or the first epoch's change: 0, as values already holds
            before, at = history[t - k - 1], history[t - k]
            value = _log_ratio(at.val_loss, before.val_loss)
            values[val_at] = val_high if value is None else value
            value = _log_ratio(at.train_loss, before.train_loss)
            values[train_at] = train_high if value is None else value

    def _budget(self, history: Sequence[EpochMetrics], total: int, values: list[float]) -> None:
        """Version 2: the budget's size and what undo did (``total`` counts decisions)."""
        i = self._index
        values[i["log_decisions_left"]] = math.log1p(max(total - len(history), 0))
        values[i["log_budget"]] = math.log(total)
        values[i["undone"]] = 1.0 if history[-1].undone else 0.0
        values[i["undone_fraction"]] = sum(m.undone for m in history) / total

    @staticmethod
    def _since_best(history: Sequence[EpochMetrics]) -> int:
        best_i, best = None, math.inf
        for i, m in enumerate(history):
            v = m.val_loss
            if v.__class__ is float:  # the usual case, without a call: finite and below the best so far
                if -math.inf < v < best:
                    best_i, best = i, v
            elif _finite(v) and v < best:
                best_i, best = i, v
        return len(history) if best_i is None else len(history) - 1 - best_i

    @staticmethod
    def _since_lr_change(history: Sequence[EpochMetrics]) -> int:
        for back in range(1, len(history)):
            if history[-back].lr != history[-back - 1].lr:
                return back - 1
        return len(history) - 1


class ObservingController(Controller):
    """Base of the controllers that decide from the encoder's observation of their whole metrics
    history (learned policies, teacher rules). The history is their state (JSON-safe, as
    ``EpochMetrics.to_dict``); subclasses call :meth:`_observe` in ``_act``."""

    _state_keys = ("history",)

    def __init__(self, encoder: ObservationEncoder | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else ObservationEncoder()
        self.history: list[dict[str, Any]] = []
        self._metrics: list[EpochMetrics] = []

    def _reset(self) -> None:
        self.history = []
        self._metrics = []

    def _observe(self, metrics: EpochMetrics) -> np.ndarray:
        """Record ``metrics`` and return the observation of the history so far. The encoder is told the
        budget in decisions (:attr:`total_decisions`; the epochs, with one decision per epoch)."""
        self.history.append(metrics.to_dict())
        self._metrics.append(metrics)
        return self.encoder.encode(self._metrics, self.initial_lr, self.total_decisions)

    def _mark_undone(self) -> None:
        """The last interval is being undone: record it ``undone``, as the run's history will."""
        self._metrics[-1] = dataclasses.replace(self._metrics[-1], undone=True)
        self.history[-1] = self._metrics[-1].to_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [dict(m) for m in self.history]
        self._metrics = [EpochMetrics.from_dict(m) for m in self.history]
