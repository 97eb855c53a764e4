"""From the runs in a study's store to the tables of its report.

Each finished run becomes a :class:`RunScore`; runs are grouped by task × optimiser ×
initial LR (a *setting*) and controller. Conventions, stated again in every report:

* A diverged run scores **0 test accuracy** (it left no usable model); its test loss,
  final train loss and convergence epoch are left out (non-finite), so those figures
  stand on fewer runs, and ``n`` says how many.
* Paired comparisons use final test accuracy, seed by seed, against ``study.reference``
  and against the best baseline of the setting (highest mean test accuracy among
  ``study.baselines``).
* Regret: per task and seed, the best test accuracy any controller reached at any
  initial LR (and optimiser) minus this run's. Rank: within each setting and seed,
  controllers ranked by test accuracy (1 = best, ties averaged). Both, and the paired
  tests, come from :mod:`~lrpilot.experiments.scoring`, as in ``evaluate-controller``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lrpilot.experiments.scoring import Score, group_indices, paired_test, regret_and_rank
from lrpilot.experiments.stats import Estimate, PairedTest, convergence_epoch, mean_ci
from lrpilot.experiments.store import RunRecord
from lrpilot.experiments.study import Study
from lrpilot.metrics import EpochMetrics

__all__ = ["RunScore", "SummaryRow", "PairedRow", "OverallRow", "Analysis", "analyse", "METRICS", "Setting"]

Setting = tuple[str, str, float]
"""(task, optimiser, initial LR), with the task's defaults filled in."""

METRICS: tuple[tuple[str, str], ...] = (
    ("test_acc", "final test acc"),
    ("test_loss", "final test loss"),
    ("best_val_acc", "best val acc"),
    ("final_train_loss", "final train loss"),
    ("wall_time", "training time (s)"),
    ("convergence_epoch", "convergence epoch"),
)
"""(field of RunScore, label) of every per-run figure the summary aggregates."""


@dataclass(frozen=True)
class RunScore:
    """One finished run reduced to the figures the report compares (NaN where not defined)."""

    setting: Setting
    """(task, optimiser, initial LR) with the task's defaults filled in."""
    controller: str
    """Controller spec."""
    seed: int
    """The run's seed (runs of one seed are paired across controllers)."""
    test_acc: float
    """Final test accuracy in [0, 1]; 0 for a diverged run."""
    test_loss: float
    """Final test loss."""
    best_val_acc: float
    """Highest validation accuracy of any epoch (interval) that was not undone."""
    final_train_loss: float
    """Mean training loss of the last epoch."""
    wall_time: float
    """Training seconds (epochs only, summed over resumptions)."""
    convergence_epoch: float
    """See :func:`~lrpilot.experiments.stats.convergence_epoch`; with control intervals, the epochs of
    budget spent (undone intervals included) when the run converged, e.g. 2.75. Undone intervals never count."""
    diverged: bool
    """The run diverged (a result, not a failure)."""
    history: tuple[EpochMetrics, ...] = field(repr=False, default=())
    """Per-epoch metrics, for the plots."""
    undos: int = 0
    """Intervals (epochs, in a per-epoch run) the run undid (a controller that may undo; see docs/compare.md)."""
    name: str = ""
    """The run's directory name (``RunConfig.name``)."""

    def score(self) -> Score:
        """What regret, rank and the paired tests need of this run."""
        task, optimizer, lr = self.setting
        return Score(task, optimizer, lr, self.controller, self.seed, self.test_acc, self.diverged, undos=self.undos)


@dataclass(frozen=True)
class SummaryRow:
    """One setting × controller: every metric's mean and CI, regret and rank."""

    setting: Setting
    """(task, optimiser, initial LR)."""
    controller: str
    """Controller spec."""
    runs: int
    """Finished runs (seeds) in the group."""
    diverged: int
    """How many of them diverged."""
    metrics: dict[str, Estimate]
    """Every key of :data:`METRICS` -> its mean, CI and n."""
    regret: Estimate
    """Test-accuracy regret (see the module docstring)."""
    rank: Estimate
    """Rank among the setting's controllers, per seed (1 = best)."""
    undos: int = 0
    """Intervals undone, summed over the group's runs."""


@dataclass(frozen=True)
class PairedRow:
    """A controller against a reference controller in one setting (test accuracy, seed by seed)."""

    setting: Setting
    """(task, optimiser, initial LR)."""
    controller: str
    """The controller compared."""
    versus: str
    """The controller it is compared against."""
    role: str
    """``reference`` or ``best baseline``."""
    test: PairedTest
    """Differences (controller - versus) of final test accuracy over the shared seeds."""


@dataclass(frozen=True)
class OverallRow:
    """One task × controller over every initial LR and optimiser: robustness to the setting."""

    task: str
    """Task name."""
    controller: str
    """Controller spec."""
    regret: Estimate
    """Test-accuracy regret over every seed, LR and optimiser."""
    rank: Estimate
    """Rank over every seed, LR and optimiser."""


@dataclass
class Analysis:
    """Everything the report shows."""

    study: Study
    """The study analysed."""
    records: list[RunRecord]
    """Every run of the study, finished or not."""
    scores: list[RunScore]
    """The finished runs' figures."""
    summary: list[SummaryRow]
    """Setting × controller rows."""
    paired: list[PairedRow]
    """Paired comparisons against the reference and the best baseline."""
    overall: list[OverallRow]
    """Task × controller rows over every setting."""

    def settings(self) -> list[Setting]:
        """The settings that have results, in study order."""
        return list(dict.fromkeys(row.setting for row in self.summary))


def _nan(value: float | None) -> float:
    return math.nan if value is None or not math.isfinite(value) else float(value)


def score_run(record: RunRecord, study: Study) -> RunScore:
    """The figures of one finished run."""
    task = record.config.build_task()
    final = record.final or {}
    history = tuple(record.history)
    diverged = bool(final.get("diverged"))
    kept = [m for m in history if not m.undone]  # an undone interval's weights were discarded: no best, no convergence
    accs = [m.val_acc for m in kept if m.val_acc is not None and not m.diverged]
    conv = None if diverged else convergence_epoch(kept, study.convergence_acc_tol, study.convergence_loss_rtol)
    if conv is not None:  # with intervals, `epoch` counts intervals: convert to the epochs of budget spent then
        conv = next((m.elapsed_epochs for m in kept if m.epoch == conv and m.elapsed_epochs is not None), conv)
    return RunScore(
        setting=(task.name, task.optimizer, float(task.lr)), controller=record.config.controller, seed=record.config.seed,
        test_acc=0.0 if diverged else _nan(final.get("test_acc")),
        test_loss=_nan(final.get("test_loss")),
        best_val_acc=max(accs) if accs else math.nan,
        final_train_loss=math.nan if diverged or not history else _nan(history[-1].train_loss),
        wall_time=_nan(final.get("wall_time")),
        convergence_epoch=math.nan if conv is None else float(conv),
        diverged=diverged, history=history, undos=int(final.get("undos") or 0), name=record.name,
    )


def analyse(records: list[RunRecord], study: Study, confidence: float = 0.95) -> Analysis:
    """Score the finished runs and build every table."""
    scores = [score_run(r, study) for r in records if r.status == "done"]
    regret, rank = regret_and_rank([s.score() for s in scores])

    def estimates(idx: list[int]) -> tuple[Estimate, Estimate]:
        return mean_ci([regret[i] for i in idx], confidence), mean_ci([rank[i] for i in idx], confidence)

    summary = []
    for (setting, controller), idx in group_indices((s.setting, s.controller) for s in scores).items():
        runs = [scores[i] for i in idx]
        metrics = {key: mean_ci([getattr(r, key) for r in runs], confidence) for key, _ in METRICS}
        summary.append(SummaryRow(setting, controller, len(runs), sum(r.diverged for r in runs), metrics, *estimates(idx),
                                  undos=sum(r.undos for r in runs)))
    overall = [OverallRow(task, controller, *estimates(idx))
               for (task, controller), idx in group_indices((s.setting[0], s.controller) for s in scores).items()]
    return Analysis(study, records, scores, summary, _paired(summary, scores, study, confidence), overall)


def _paired(summary: list[SummaryRow], scores: list[RunScore], study: Study, confidence: float) -> list[PairedRow]:
    """Each setting's controllers against the reference and against the setting's best baseline."""
    rows: list[PairedRow] = []
    for setting in dict.fromkeys(row.setting for row in summary):
        present = [row for row in summary if row.setting == setting]
        names = [row.controller for row in present]
        baselines = [row for row in present if row.controller.partition(":")[0] in study.baselines]
        best = max(baselines, key=lambda row: _sort_key(row.metrics["test_acc"].mean), default=None)
        references = [(study.reference, "reference")] if study.reference in names else []
        if best is not None and best.controller != study.reference:
            references.append((best.controller, "best baseline"))
        runs = [s.score() for s in scores if s.setting == setting]
        rows += [PairedRow(setting, controller, versus, role, paired_test(runs, controller, versus, confidence))
                 for versus, role in references for controller in names if controller != versus]
    return rows


def _sort_key(value: float) -> float:
    return value if math.isfinite(value) else -math.inf
