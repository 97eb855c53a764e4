"""``lrpilot evaluate-controller``: learned controllers against every classic schedule on held-out tasks.

Studies of the compare runner (so runs are resumable and paired by seed) under one
directory:

* ``OUT/runs/<controller>``: one study per controller (evaluated or baseline) over tasks ×
  initial LRs × optimisers × seeds; a baseline's runs are reused by every later evaluation
  with the same grid, and a learned policy's directory name carries its file hash;
* ``OUT/runs/lrfree``: the learning-rate-free optimisers (``prodigy``, ``schedulefree-adamw``) with
  the ``constant`` controller at their own default LR (there is no LR to misspecify), same
  tasks and seeds.

Scores (final test accuracy; a diverged run scores 0, as in the compare report), computed by
:mod:`~lrpilot.experiments.scoring`, the implementation ``lrpilot compare`` uses too:

* **regret**: per task and seed, the best final test accuracy *any* controller of the main study
  reached at *any* initial LR and optimiser (the per-task oracle), minus this run's. LR-free
  runs are scored against the same oracle (they are not part of it).
* **rank**: within each (task, optimiser, initial LR, seed) block, the controllers
  ranked by test accuracy (1 = best, ties averaged).

Tables: overall (regret, rank, test accuracy, divergences, and the intervals undone where a run
undid one), per initial LR (regret, and
test accuracy minus ``rule``'s, in points), per task, and paired comparisons of each evaluated
controller against each baseline. Printed on the terminal (fitting 80 columns; the per-task
table is in the files only) and written to ``OUT/evaluation.md`` (and ``OUT/evaluation.json``).

``evaluation.json`` also keeps every run's :class:`Score` (key ``"scores"``): a few kilobytes that
:func:`scores_from_evaluation` reads back, so that an evaluation can be pooled, paired and tabled again
after its run folders are gone (``benchmarks/ppo_heldout.py`` takes either).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from lrpilot.atomic import write_text_atomic
from lrpilot.controller import from_spec
from lrpilot.controller.spec import is_policy_spec
from lrpilot.experiments.analysis import score_run
from lrpilot.experiments.runner import Execution, run_study
from lrpilot.experiments.scoring import (
    Column, Score, TerminalTable, cadence_note, estimate_cell, group_indices, markdown_table, paired_test, print_table,
    regret_and_rank,
)
from lrpilot.experiments.stats import Estimate, mean_ci
from lrpilot.experiments.store import StudyStore, read_study
from lrpilot.experiments.study import Study, import_plugins

# Score and regret_and_rank live in scoring.py (shared with `lrpilot compare`); importable here as before.
__all__ = ["EvaluationPlan", "Score", "regret_and_rank", "build_tables", "render_markdown", "print_tables",
           "run_evaluation", "DEFAULT_BASELINES", "DEFAULT_LRFREE", "collect_scores", "scores_from_evaluation"]

DEFAULT_BASELINES: tuple[str, ...] = ("constant", "step", "plateau", "rule", "cosine", "bold")
DEFAULT_LRFREE: tuple[str, ...] = ("prodigy", "schedulefree-adamw")


@dataclass(frozen=True)
class EvaluationPlan:
    """What ``evaluate-controller`` runs."""

    specs: tuple[str, ...]
    """The controllers under evaluation (spec strings, e.g. ``policy:default``)."""
    tasks: tuple[str, ...]
    """Held-out tasks."""
    lrs: tuple[float, ...]
    """Initial learning rates of the grid."""
    seeds: int = 3
    """Seeds per task, LR and optimiser (runs are paired across controllers by seed)."""
    epochs: int | None = None
    """Epoch budget (None: each task's)."""
    weight_decay: float | None = None
    """Weight decay of every run (None: each task's)."""
    optimizers: tuple[str, ...] = ("adam",)
    """Optimisers of the grid."""
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    """Schedules and rules every controller is compared with (each run once, reused across evaluations)."""
    lrfree: tuple[str, ...] = DEFAULT_LRFREE
    """Learning-rate-free optimisers shown as references (run at their recommended LR)."""
    device: str = "cpu"
    """Device of every run."""
    imports: tuple[str, ...] = ()
    """Modules imported in every worker first (they register tasks or controllers)."""
    task_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per task, task-specific settings."""
    interval: str | None = None
    """Control interval of every run (``"0.25"``, ``"50steps"``); None: one decision per epoch."""
    val_subset: int | None = None
    """Validate every run on a fixed subset of this many validation examples; None: the whole split."""

    def controller_studies(self, out: Path) -> list[tuple[str, Study]]:
        """One study per controller (``OUT/runs/<name>``), so baselines are run once and reused by
        every later evaluation with the same grid; runs are paired across studies by seed."""
        controllers = tuple(dict.fromkeys((*self.specs, *self.baselines)))
        return [(c, Study(tasks=self.tasks, controllers=(c,), seeds=self.seeds, lrs=self.lrs,
                          optimizers=self.optimizers, epochs=self.epochs, weight_decay=self.weight_decay,
                          device=self.device, imports=self.imports, interval=self.interval,
                          val_subset=self.val_subset, task_options=dict(self.task_options), reference=c, baselines=(),
                          out=str(out / "runs" / study_dir_name(c))))
                for c in controllers]

    def lrfree_study(self, out: Path) -> Study | None:
        """The study of the LR-free optimisers (``OUT/runs/lrfree``); None when there are none."""
        if not self.lrfree:
            return None
        return Study(tasks=self.tasks, controllers=("constant",), seeds=self.seeds, lrs=(None,),
                     optimizers=self.lrfree, epochs=self.epochs, weight_decay=self.weight_decay,
                     device=self.device, imports=self.imports, interval=self.interval, val_subset=self.val_subset,
                     task_options=dict(self.task_options), reference="constant", baselines=("constant",),
                     out=str(out / "runs" / "lrfree"))


def study_dir_name(spec: str) -> str:
    """A directory name for a controller spec; a learned policy's carries its policy hash (sha256 over
    card and weights, as the store's fingerprint), so a changed policy file is a new study, never
    stale results and never a "different study" refusal."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec.strip())[:60]
    if is_policy_spec(spec):
        name += "-" + from_spec(spec).policy_hash[:10]
    return name


def collect_scores(root: Path, lrfree: bool = False) -> list[Score]:
    """The finished runs of the study in ``root`` as :class:`Score` values."""
    study = read_study(root)
    import_plugins(study.imports)
    out = []
    for record in StudyStore(root).records(study):
        if record.status != "done":
            continue
        s = score_run(record, study)
        task, optimizer, lr = s.setting
        name = f"constant+{optimizer}" if lrfree else s.controller
        out.append(Score(task, optimizer, None if lrfree else lr, name, s.seed, s.test_acc, s.diverged, lrfree,
                         undos=s.undos))
    return out


def scores_from_evaluation(path: str | Path) -> list[Score]:
    """Every run's :class:`Score` as :func:`run_evaluation` kept it in ``evaluation.json`` (``path``: the file
    or the evaluation's folder). JSON has no NaN: a task without a test split comes back as NaN again."""
    path = Path(path)
    if path.is_dir():
        path = path / "evaluation.json"
    try:
        rows = json.loads(path.read_text())["scores"]
    except FileNotFoundError:
        raise FileNotFoundError(f"no evaluation at {path}") from None
    except KeyError:
        raise ValueError(f"{path} keeps no per-run scores (written before they were kept): "
                         "rerun `lrpilot evaluate-controller` with the same --out to rewrite it") from None
    return [Score(**{**row, "test_acc": math.nan if row["test_acc"] is None else row["test_acc"]}) for row in rows]


# -- tables -------------------------------------------------------------------------------
def _est(values: Iterable[float]) -> dict[str, float]:
    e = mean_ci(list(values))
    return {"mean": e.mean, "low": e.low, "high": e.high, "n": e.n}


def build_tables(scores: Sequence[Score], specs: Sequence[str], reference: str = "rule") -> dict[str, Any]:
    """Every table, as plain JSON-ready values (regret and rank from :func:`regret_and_rank`)."""
    regret, rank = regret_and_rank(scores)
    controllers = list(dict.fromkeys(s.controller for s in scores if not s.lrfree))
    lrfree = list(dict.fromkeys(s.controller for s in scores if s.lrfree))
    by = group_indices(s.controller for s in scores)
    lrs = sorted({s.lr for s in scores if s.lr is not None})
    tasks = list(dict.fromkeys(s.task for s in scores))
    overall = [{"controller": name, "lrfree": scores[by[name][0]].lrfree, "n": len(by[name]),
                "regret": _est(regret[i] for i in by[name]), "rank": _est(rank[i] for i in by[name]),
                "test_acc": _est(scores[i].test_acc for i in by[name]),
                "diverged": sum(scores[i].diverged for i in by[name]),
                "undos": sum(scores[i].undos for i in by[name])} for name in [*controllers, *lrfree]]
    per_task = [{"controller": name, "regret": {task: _est(regret[i] for i in by[name] if scores[i].task == task)
                                                for task in tasks}} for name in [*controllers, *lrfree]]
    return {"controllers": controllers, "lrfree": lrfree, "lrs": lrs, "tasks": tasks, "reference": reference,
            "overall": overall, "per_lr": [_per_lr(scores, by[name], regret, rank, lrs, reference) for name in controllers],
            "per_task": per_task,
            "paired": [_paired(scores, spec, other) for spec in specs for other in controllers if other != spec],
            "counts": {"runs": len(scores), "tasks": len(tasks), "lrs": len(lrs),
                       "optimizers": sorted({s.optimizer for s in scores if not s.lrfree}),
                       "seeds": len({s.seed for s in scores})}}


def _per_lr(scores: Sequence[Score], idx: list[int], regret: list[float], rank: list[float], lrs: list[float],
            reference: str) -> dict[str, Any]:
    """One controller (the runs ``idx``) per initial LR: regret, test accuracy minus the reference's, rank."""
    ref = {s.block: s.test_acc for s in scores if s.controller == reference}
    at = {lr: [i for i in idx if scores[i].lr == lr] for lr in lrs}
    return {"controller": scores[idx[0]].controller,
            "regret": {repr(lr): _est(regret[i] for i in at[lr]) for lr in lrs},
            "vs_reference_points": {repr(lr): _est(100 * (scores[i].test_acc - ref[scores[i].block])
                                                   for i in at[lr] if scores[i].block in ref) for lr in lrs},
            "rank": {repr(lr): _est(rank[i] for i in at[lr]) for lr in lrs}}


def _paired(scores: Sequence[Score], spec: str, other: str) -> dict[str, Any]:
    """``spec`` against ``other`` (test accuracy, paired by task, optimiser, LR and seed), in points."""
    test = paired_test(scores, spec, other)
    d = test.difference
    return {"controller": spec, "versus": other, "n": d.n, "mean_diff_points": 100 * d.mean if d.n else math.nan,
            "low": 100 * d.low, "high": 100 * d.high, "wins": test.wins, "ties": test.ties, "losses": test.losses,
            "p_value": test.p_value}


# -- rendering ------------------------------------------------------------------------------
TITLES = {
    "overall": "Overall: regret to the per-task oracle and rank",
    "per_lr": "Per initial LR: mean regret (points)",
    "per_lr_ref": "Per initial LR: mean test accuracy minus the reference's (points)",
    "per_task": "Per task: mean regret (points)",
    "paired": "Paired comparisons (same task, optimiser, LR, seed)",
}


def _cell(e: Mapping[str, float], scale: float = 100.0, ci: bool = True, terminal: bool = False) -> str:
    """An estimate of the JSON tables: ``25.00 ± 3.20`` in the markdown, ``25.00±3.20`` on the terminal."""
    return estimate_cell(Estimate(**e), scale, 2, ci=("±" if terminal else " ± ") if ci else "")


def _undid(tables: Mapping[str, Any]) -> bool:
    """Whether any run undid an interval: the overall tables then have an undo column."""
    return any(r.get("undos", 0) for r in tables["overall"])


def _rows(tables: Mapping[str, Any], terminal: bool = False) -> dict[str, list[list[str]]]:
    """The cells of every table; LR-free rows are italic in the markdown."""
    lrs, reference, undid = tables["lrs"], tables["reference"], _undid(tables)
    overall = [[r["controller"] if terminal or not r["lrfree"] else f"*{r['controller']}*", str(r["n"]),
                _cell(r["regret"], terminal=terminal), _cell(r["rank"], 1.0, terminal=terminal),
                _cell(r["test_acc"], ci=False), str(r["diverged"]), *([str(r.get("undos", 0))] if undid else [])]
               for r in sorted(tables["overall"], key=lambda r: (r["lrfree"], r["regret"]["mean"]))]
    paired = [[p["controller"], p["versus"], str(p["n"]),
               estimate_cell(Estimate(p["mean_diff_points"], math.nan, math.nan, p["n"]), sign=True, ci=""),
               f"{p['wins']}/{p['ties']}/{p['losses']}", "–" if p["p_value"] is None else f"{p['p_value']:.3g}"]
              for p in tables["paired"]]
    return {"overall": overall,
            "per_lr": [[r["controller"], *(_cell(r["regret"][repr(lr)], ci=False) for lr in lrs)] for r in tables["per_lr"]],
            "per_lr_ref": [[r["controller"], *(_cell(r["vs_reference_points"][repr(lr)], 1.0, ci=False) for lr in lrs)]
                           for r in tables["per_lr"] if r["controller"] != reference],
            "per_task": [[r["controller"], *(_cell(r["regret"][t], ci=False) for t in tables["tasks"])]
                         for r in tables["per_task"]],
            "paired": paired}


def render_markdown(tables: Mapping[str, Any]) -> str:
    """``OUT/evaluation.md``."""
    c = tables["counts"]
    lines = ["# Controller evaluation", "",
             f"{c['runs']} runs: {c['tasks']} task(s) × {c['lrs']} initial LR(s) × optimisers "
             f"{', '.join(c['optimizers'])} × {c['seeds']} seed(s). Score: final test accuracy (a diverged run "
             "scores 0). Regret: per task and seed, the best final test accuracy any main-study controller "
             "reached at any initial LR and optimiser, minus this run's (percentage points). Rank: within each "
             "task × optimiser × initial LR × seed, 1 = best, ties averaged. *Italic* rows: learning-rate-free "
             "optimisers with the constant controller at their default LR, scored against the same oracle "
             "(no rank).", ""]
    if tables.get("interval") or tables.get("val_subset"):
        lines += [cadence_note(tables.get("interval"), tables.get("val_subset")), ""]
    lrs = [f"{lr:g}" for lr in tables["lrs"]]
    undos = ["undos"] if _undid(tables) else []  # intervals undone, summed over the runs: only where a run undid
    headers = {"overall": ["controller", "runs", "regret (points, ±95% CI)", "mean rank", "test acc %", "diverged", *undos],
               "per_lr": ["regret at initial LR", *lrs],
               "per_lr_ref": [f"test acc − {tables['reference']} (points) at LR", *lrs],
               "per_task": ["regret by task", *tables["tasks"]],
               "paired": ["controller", "versus", "pairs", "Δ test acc (points)", "wins/ties/losses", "Wilcoxon p"]}
    rows = _rows(tables)
    for key in ("overall", "per_lr", "per_lr_ref", "per_task", "paired"):
        lines += [f"## {TITLES[key]}", "", *markdown_table(headers[key], rows[key]), ""]
    return "\n".join(lines)


def terminal_tables(tables: Mapping[str, Any]) -> list[TerminalTable]:
    """The tables printed on the terminal (all but per task), with short headers and their key."""
    rows, name = _rows(tables, terminal=True), Column("controller", names=True)
    lrs = tuple(Column(f"{lr:g}") for lr in tables["lrs"])
    overall_key = ("regret: points below the per-task oracle (the best run of the task and seed at any LR and "
                   "optimiser), mean±95% CI; rank: 1 = best within task × optimiser × LR × seed; acc %: mean final "
                   "test accuracy; div: diverged runs (acc 0)."
                   + (" undo: intervals undone (all runs)." if _undid(tables) else "")
                   + (" constant+OPT: an LR-free optimiser at its default LR (no rank)." if tables["lrfree"] else ""))
    overall = ("runs", "regret", "rank", "acc %", "div", *(("undo",) if _undid(tables) else ()))
    return [
        TerminalTable(TITLES["overall"], (name, *(Column(h) for h in overall)),
                      _tuples(rows["overall"]), (overall_key,)),
        TerminalTable(TITLES["per_lr"], (name, *lrs), _tuples(rows["per_lr"])),
        TerminalTable(f"Per initial LR: mean test accuracy minus {tables['reference']}'s (points)", (name, *lrs),
                      _tuples(rows["per_lr_ref"])),
        TerminalTable(TITLES["paired"], (name, Column("versus", names=True),
                                         *(Column(h) for h in ("pairs", "Δ acc", "w/t/l", "p"))),
                      _tuples(rows["paired"]),
                      ("Δ acc: mean difference of final test accuracy (points); w/t/l: wins/ties/losses; "
                       "p: Wilcoxon signed-rank.",)),
    ]


def _tuples(rows: list[list[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(r) for r in rows)


def print_tables(tables: Mapping[str, Any], console: Any) -> None:
    """Print :func:`terminal_tables` (each fits the console's width)."""
    for table in terminal_tables(tables):
        print_table(table, console)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def run_evaluation(plan: EvaluationPlan, out: str | Path, *, workers: int | None = None, console: Any = None,
                   progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Run (or resume) both studies, then build, print and write the tables."""
    out = Path(out)
    execution = Execution(workers=workers, progress=progress, force=force)
    failed: list[str] = []
    studies = [(study, False) for _, study in plan.controller_studies(out)]
    studies.append((plan.lrfree_study(out), True))
    for study, _ in studies:
        if study is not None:
            summary = run_study(study, study.out, execution, console)
            failed += summary.failed
    scores: list[Score] = []
    for study, lrfree in studies:
        if study is not None:
            scores += collect_scores(Path(study.out), lrfree=lrfree)
    tables = {**build_tables(scores, plan.specs), "interval": plan.interval, "val_subset": plan.val_subset,
              "failed": failed}
    write_text_atomic(out / "evaluation.md", render_markdown(tables))
    record = {**tables, "scores": [dataclasses.asdict(s) for s in scores]}
    write_text_atomic(out / "evaluation.json", json.dumps(_jsonable(record), indent=1))
    if console is not None:
        print_tables(tables, console)
        console.print(f"tables written to {out / 'evaluation.md'}")
    return tables
