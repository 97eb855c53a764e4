"""The statistics of a comparison: pure functions of numbers (scipy.stats), no I/O.

* :func:`mean_ci`: mean and a t-based confidence interval (Student's t with n-1
  degrees of freedom; the CI is undefined for n < 2).
* :func:`paired_comparison`: per-seed differences between two controllers: mean
  difference with its t-based CI, the two-sided **Wilcoxon signed-rank** test (no
  normality assumption, and robust to one odd seed; zero differences are dropped, as
  in Wilcoxon's original method) and seeds won / tied / lost. With n pairs the test
  cannot give p below :func:`min_wilcoxon_p` (0.0625 for 5 seeds), so a small study
  shows the direction of every seed rather than a "significant" verdict.
* :func:`convergence_epoch`: the first epoch whose best-so-far validation accuracy is
  within a tolerance of the run's best (validation loss within a relative tolerance
  for tasks without accuracy).
* :func:`rank_values`: ranks with ties averaged (1 = best).
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

from lrpilot.metrics import EpochMetrics

__all__ = ["Estimate", "PairedTest", "mean_ci", "paired_comparison", "min_wilcoxon_p", "convergence_epoch", "rank_values"]


@dataclass(frozen=True)
class Estimate:
    """A mean, its confidence interval and the number of values behind it."""

    mean: float
    """Sample mean (NaN when n = 0)."""
    low: float
    """Lower end of the confidence interval (NaN when n < 2)."""
    high: float
    """Upper end of the confidence interval (NaN when n < 2)."""
    n: int
    """Number of values (non-finite ones are left out)."""


@dataclass(frozen=True)
class PairedTest:
    """Controller A against controller B, seed by seed (differences are A - B)."""

    difference: Estimate
    """Mean difference with its t-based CI; ``difference.n`` is the number of pairs."""
    p_value: float | None
    """Two-sided Wilcoxon signed-rank p; None with fewer than 2 pairs; 1.0 when every difference is 0."""
    wins: int
    """Pairs where A is higher."""
    ties: int
    """Pairs where A and B are equal."""
    losses: int
    """Pairs where A is lower."""
    note: str = ""
    """Why no test was run, or what the smallest possible p is."""
    signed_rank_sum: float = 0.0
    """R+ minus R-: the Wilcoxon signed ranks of A's gains minus those of its losses (0 without a test). The p is
    two-sided, so its sign says which side a significant p favours: a mean gain from a few large wins among many small
    losses has a negative sum."""


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def mean_ci(values: Iterable[float | None], confidence: float = 0.95) -> Estimate:
    """Mean and t-based CI of the finite values; ``None`` and NaN are left out.

    Example:
        >>> e = mean_ci([1, 2, 3, 4, 5])
        >>> round(e.mean, 3), round(e.low, 3), round(e.high, 3), e.n
        (3.0, 1.037, 4.963, 5)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = math.fsum(xs) / n
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1)
    from scipy import stats

    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * statistics.stdev(xs) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n)


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give with n non-zero pairs."""
    return min(1.0, 2.0 / 2**n) if n > 0 else 1.0


def paired_comparison(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedTest:
    """Compare paired values (same seeds, same order); pairs with a non-finite value are dropped.

    Example:
        >>> t = paired_comparison([0.9, 0.8, 0.7], [0.8, 0.8, 0.6])
        >>> t.wins, t.ties, t.losses, t.p_value
        (2, 1, 0, 0.5)
    """
    if len(a) != len(b):
        raise ValueError(f"paired values must have equal lengths, got {len(a)} and {len(b)}")
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    diffs = [x - y for x, y in pairs]
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    ties = len(diffs) - wins - losses
    estimate = mean_ci(diffs, confidence)
    if len(diffs) < 2:
        return PairedTest(estimate, None, wins, ties, losses, f"no test with {len(diffs)} pair(s)")
    nonzero = wins + losses
    if nonzero == 0:
        return PairedTest(estimate, 1.0, wins, ties, losses, "all differences are 0")
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(stats.wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue)
    nonzero_diffs = [d for d in diffs if d != 0]
    ranks = stats.rankdata([abs(d) for d in nonzero_diffs])
    rank_sum = float(sum(r if d > 0 else -r for r, d in zip(ranks, nonzero_diffs)))
    return PairedTest(estimate, p, wins, ties, losses, f"smallest possible p with {nonzero} non-zero pairs: "
                      f"{min_wilcoxon_p(nonzero):.3g}", rank_sum)


def convergence_epoch(history: Sequence[EpochMetrics], acc_tol: float = 0.005, loss_rtol: float = 0.01) -> int | None:
    """First epoch whose best-so-far val accuracy is within ``acc_tol`` of the run's best.

    Tasks without accuracy use validation loss: the first epoch within ``loss_rtol``
    (relative) of the run's lowest. Diverged epochs are ignored; None if no epoch counts.

    Example:
        >>> h = [EpochMetrics(epoch=e, lr=1e-3, train_loss=1.0, val_acc=a) for e, a in [(1, .5), (2, .9), (3, .904)]]
        >>> convergence_epoch(h)
        2
    """
    valid = [m for m in history if not m.diverged]
    accs = [(m.epoch, m.val_acc) for m in valid if m.val_acc is not None and math.isfinite(m.val_acc)]
    if accs:
        best = max(a for _, a in accs)
        return next(e for e, a in accs if a >= best - acc_tol - 1e-12)
    losses = [(m.epoch, m.val_loss) for m in valid if math.isfinite(m.val_loss)]
    if not losses:
        return None
    best = min(v for _, v in losses)
    return next(e for e, v in losses if v <= best + abs(best) * loss_rtol + 1e-12)


def rank_values(values: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Rank keys by value, highest first (rank 1); ties share their average rank; NaN ranks last.

    Example:
        >>> rank_values({"a": 0.9, "b": 0.95, "c": 0.9})
        {'a': 2.5, 'b': 1.0, 'c': 2.5}
    """
    from scipy.stats import rankdata

    keys = list(values)
    scores = [-values[k] if math.isfinite(values[k]) else math.inf for k in keys]
    return {k: float(r) for k, r in zip(keys, rankdata(scores, method="average"))}
