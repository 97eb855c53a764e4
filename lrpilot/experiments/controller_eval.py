"""``lrpilot evaluate-controller``: learned controllers against every classic schedule on held-out tasks.

Studies of the compare runner (so runs are resumable and paired by seed) under one
directory:

* ``OUT/runs/<controller>``: one study per controller (evaluated or baseline) over tasks ×
  initial LRs × optimisers × seeds; a baseline's runs are reused by every later evaluation
  with the same grid, and a learned policy's directory name carries its file hash;
* ``OUT/runs/lrfree``: the learning-rate-free optimisers (``prodigy``, ``schedulefree-adamw``) with
  the ``constant`` controller at their own default LR (there is no LR to misspecify), same
  tasks and seeds.

Scores (final test accuracy; a diverged run scores 0, as in the compare report):

* **regret**: per task and seed, the best final test accuracy *any* controller of the main study
  reached at *any* initial LR and optimiser (the per-task oracle), minus this run's. LR-free
  runs are scored against the same oracle (they are not part of it).
* **rank**: within each (task, optimiser, initial LR, seed) block, the controllers
  ranked by test accuracy (1 = best, ties averaged).

Tables: overall (regret, rank, test accuracy, divergences), per initial LR (regret, and
test accuracy minus ``rule``'s, in points), per task, and paired comparisons of each evaluated
controller against each baseline. Printed with rich and written to ``OUT/evaluation.md``
(and ``OUT/evaluation.json``).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from lrpilot.controller.spec import is_policy_spec
from lrpilot.experiments.stats import mean_ci, paired_comparison, rank_values

__all__ = ["EvaluationPlan", "Score", "regret_and_rank", "build_tables", "render_markdown", "run_evaluation",
           "DEFAULT_BASELINES", "DEFAULT_LRFREE", "collect_scores"]

DEFAULT_BASELINES: tuple[str, ...] = ("constant", "step", "plateau", "rule", "cosine", "bold")
DEFAULT_LRFREE: tuple[str, ...] = ("prodigy", "schedulefree-adamw")


@dataclass(frozen=True)
class Score:
    """One finished run: what the tables need."""

    task: str
    optimizer: str
    lr: float | None
    """Initial LR (None for an LR-free run at its default)."""
    controller: str
    """Controller spec, or ``constant+OPTIMIZER`` for an LR-free run."""
    seed: int
    test_acc: float
    """Final test accuracy (0 when diverged)."""
    diverged: bool = False
    lrfree: bool = False


@dataclass(frozen=True)
class EvaluationPlan:
    """What ``evaluate-controller`` runs."""

    specs: tuple[str, ...]
    tasks: tuple[str, ...]
    lrs: tuple[float, ...]
    seeds: int = 3
    epochs: int | None = None
    weight_decay: float | None = None
    optimizers: tuple[str, ...] = ("adam",)
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    lrfree: tuple[str, ...] = DEFAULT_LRFREE
    device: str = "cpu"
    imports: tuple[str, ...] = ()
    task_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def controller_studies(self, out: Path) -> list[tuple[str, Any]]:
        """One study per controller (``OUT/runs/<name>``), so baselines are run once and reused by
        every later evaluation with the same grid; runs are paired across studies by seed."""
        from lrpilot.experiments.study import Study

        controllers = tuple(dict.fromkeys((*self.specs, *self.baselines)))
        return [(c, Study(tasks=self.tasks, controllers=(c,), seeds=self.seeds, lrs=self.lrs,
                          optimizers=self.optimizers, epochs=self.epochs, weight_decay=self.weight_decay,
                          device=self.device, imports=self.imports,
                          task_options=dict(self.task_options), reference=c, baselines=(),
                          out=str(out / "runs" / study_dir_name(c))))
                for c in controllers]

    def lrfree_study(self, out: Path):  # noqa: ANN201 - Study | None
        from lrpilot.experiments.study import Study

        if not self.lrfree:
            return None
        return Study(tasks=self.tasks, controllers=("constant",), seeds=self.seeds, lrs=(None,),
                     optimizers=self.lrfree, epochs=self.epochs, weight_decay=self.weight_decay,
                     device=self.device, imports=self.imports,
                     task_options=dict(self.task_options), reference="constant", baselines=("constant",),
                     out=str(out / "runs" / "lrfree"))


def study_dir_name(spec: str) -> str:
    """A directory name for a controller spec; a learned policy's carries its policy hash (sha256 over
    card and weights, as the store's fingerprint), so a changed policy file is a new study, never
    stale results and never a "different study" refusal."""
    import re

    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec.strip())[:60]
    if is_policy_spec(spec):
        name += "-" + from_spec(spec).policy_hash[:10]
    return name


# -- scoring ----------------------------------------------------------------------------
def regret_and_rank(scores: Sequence[Score]) -> tuple[list[float], list[float]]:
    """Regret and rank of each score (in order); rank is NaN for LR-free runs."""
    best: dict[tuple[str, int], float] = defaultdict(lambda: -math.inf)
    for s in scores:
        if not s.lrfree and math.isfinite(s.test_acc):
            best[(s.task, s.seed)] = max(best[(s.task, s.seed)], s.test_acc)
    blocks: dict[tuple, dict[int, float]] = defaultdict(dict)
    for i, s in enumerate(scores):
        if not s.lrfree:
            blocks[(s.task, s.optimizer, s.lr, s.seed)][i] = s.test_acc
    rank = [math.nan] * len(scores)
    for block in blocks.values():
        for i, r in rank_values(block).items():
            rank[i] = float(r)
    oracle = [best.get((s.task, s.seed), math.nan) for s in scores]
    regret = [o - s.test_acc if math.isfinite(o) and math.isfinite(s.test_acc) else math.nan
              for o, s in zip(oracle, scores)]
    return regret, rank


def collect_scores(root: Path, lrfree: bool = False) -> list[Score]:
    """The finished runs of the study in ``root`` as :class:`Score` values."""
    from lrpilot.experiments.analysis import score_run
    from lrpilot.experiments.store import StudyStore, read_study
    from lrpilot.experiments.study import import_plugins

    study = read_study(root)
    import_plugins(study.imports)
    out = []
    for record in StudyStore(root).records(study):
        if record.status != "done":
            continue
        s = score_run(record, study)
        task, optimizer, lr = s.setting
        name = f"constant+{optimizer}" if lrfree else s.controller
        out.append(Score(task, optimizer, None if lrfree else lr, name, s.seed, s.test_acc, s.diverged, lrfree))
    return out


def _est(values: Iterable[float]) -> dict[str, float]:
    e = mean_ci(list(values))
    return {"mean": e.mean, "low": e.low, "high": e.high, "n": e.n}


def build_tables(scores: Sequence[Score], specs: Sequence[str], reference: str = "rule") -> dict[str, Any]:
    """Every table, as plain JSON-ready values."""
    regret, rank = regret_and_rank(scores)
    controllers = list(dict.fromkeys(s.controller for s in scores if not s.lrfree))
    lrfree = list(dict.fromkeys(s.controller for s in scores if s.lrfree))
    by: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(scores):
        by[s.controller].append(i)
    overall = []
    for name in [*controllers, *lrfree]:
        idx = by[name]
        overall.append({"controller": name, "lrfree": scores[idx[0]].lrfree, "n": len(idx),
                        "regret": _est(regret[i] for i in idx), "rank": _est(rank[i] for i in idx),
                        "test_acc": _est(scores[i].test_acc for i in idx),
                        "diverged": sum(scores[i].diverged for i in idx)})
    lrs = sorted({s.lr for s in scores if s.lr is not None})
    per_lr = []
    key = {(s.task, s.optimizer, s.lr, s.seed, s.controller): scores[i].test_acc for i, s in enumerate(scores)}
    for name in controllers:
        row: dict[str, Any] = {"controller": name, "regret": {}, "vs_reference_points": {}, "rank": {}}
        for lr in lrs:
            idx = [i for i in by[name] if scores[i].lr == lr]
            row["regret"][repr(lr)] = _est(regret[i] for i in idx)
            row["rank"][repr(lr)] = _est(rank[i] for i in idx)
            diffs = [100 * (scores[i].test_acc - key[(scores[i].task, scores[i].optimizer, lr, scores[i].seed, reference)])
                     for i in idx if (scores[i].task, scores[i].optimizer, lr, scores[i].seed, reference) in key]
            row["vs_reference_points"][repr(lr)] = _est(diffs)
        per_lr.append(row)
    tasks = list(dict.fromkeys(s.task for s in scores))
    per_task = []
    for name in [*controllers, *lrfree]:
        row = {"controller": name, "regret": {}}
        for task in tasks:
            row["regret"][task] = _est(regret[i] for i in by[name] if scores[i].task == task)
        per_task.append(row)
    paired = []
    for spec in specs:
        for other in controllers:
            if other == spec:
                continue
            mine = {(s.task, s.optimizer, s.lr, s.seed): scores[i].test_acc for i, s in enumerate(scores) if s.controller == spec}
            theirs = {(s.task, s.optimizer, s.lr, s.seed): scores[i].test_acc for i, s in enumerate(scores) if s.controller == other}
            shared = sorted(set(mine) & set(theirs), key=repr)
            test = paired_comparison([mine[k] for k in shared], [theirs[k] for k in shared])
            paired.append({"controller": spec, "versus": other, "n": test.difference.n,
                           "mean_diff_points": 100 * test.difference.mean if test.difference.n else math.nan,
                           "low": 100 * test.difference.low, "high": 100 * test.difference.high,
                           "wins": test.wins, "ties": test.ties, "losses": test.losses, "p_value": test.p_value})
    return {"controllers": controllers, "lrfree": lrfree, "lrs": lrs, "tasks": tasks, "reference": reference,
            "overall": overall, "per_lr": per_lr, "per_task": per_task, "paired": paired,
            "counts": {"runs": len(scores), "tasks": len(tasks), "lrs": len(lrs),
                       "optimizers": sorted({s.optimizer for s in scores if not s.lrfree}),
                       "seeds": len({s.seed for s in scores})}}


# -- rendering ------------------------------------------------------------------------------
def _pct(e: Mapping[str, float], scale: float = 100.0, digits: int = 2, ci: bool = True) -> str:
    if not e["n"] or not math.isfinite(e["mean"]):
        return "–"
    text = f"{scale * e['mean']:.{digits}f}"
    if ci and e["n"] > 1 and math.isfinite(e["low"]):
        text += f" ± {scale * (e['high'] - e['low']) / 2:.{digits}f}"
    return text


def _rows(tables: Mapping[str, Any]) -> dict[str, list[list[str]]]:
    overall = [[("*" + r["controller"] + "*") if r["lrfree"] else r["controller"], str(r["n"]),
                _pct(r["regret"]), _pct(r["rank"], 1.0) if r["rank"]["n"] else "–", _pct(r["test_acc"], ci=False),
                str(r["diverged"])] for r in sorted(tables["overall"], key=lambda r: (r["lrfree"], r["regret"]["mean"]))]
    lrs = tables["lrs"]
    per_lr = [[r["controller"], *[_pct(r["regret"][repr(lr)], ci=False) for lr in lrs]] for r in tables["per_lr"]]
    per_lr_ref = [[r["controller"], *[_pct(r["vs_reference_points"][repr(lr)], scale=1.0, ci=False) for lr in lrs]]
                  for r in tables["per_lr"] if r["controller"] != tables["reference"]]
    per_task = [[r["controller"], *[_pct(r["regret"][t], ci=False) for t in tables["tasks"]]] for r in tables["per_task"]]
    paired = [[p["controller"], p["versus"], str(p["n"]),
               f"{p['mean_diff_points']:+.2f}" if math.isfinite(p["mean_diff_points"]) else "–",
               f"{p['wins']}/{p['ties']}/{p['losses']}", "–" if p["p_value"] is None else f"{p['p_value']:.3g}"]
              for p in tables["paired"]]
    return {"overall": overall, "per_lr": per_lr, "per_lr_ref": per_lr_ref, "per_task": per_task, "paired": paired}


HEADERS = {
    "overall": ["controller", "runs", "regret (points, ±95% CI)", "mean rank", "test acc %", "diverged"],
    "per_task": ["controller"],
    "paired": ["controller", "versus", "pairs", "Δ test acc (points)", "wins/ties/losses", "Wilcoxon p"],
}


def _headers(tables: Mapping[str, Any]) -> dict[str, list[str]]:
    lrs = [f"{lr:g}" for lr in tables["lrs"]]
    return {"overall": HEADERS["overall"], "per_lr": ["regret at initial LR", *lrs],
            "per_lr_ref": [f"test acc − {tables['reference']} (points) at LR", *lrs],
            "per_task": ["regret by task", *tables["tasks"]], "paired": HEADERS["paired"]}


TITLES = {
    "overall": "Overall: regret to the per-task oracle and rank",
    "per_lr": "Per initial LR: mean regret (points)",
    "per_lr_ref": "Per initial LR: mean test accuracy minus the reference's (points)",
    "per_task": "Per task: mean regret (points)",
    "paired": "Paired comparisons (same task, optimiser, LR, seed)",
}


def render_markdown(tables: Mapping[str, Any]) -> str:
    c = tables["counts"]
    lines = ["# Controller evaluation", "",
             f"{c['runs']} runs: {c['tasks']} task(s) × {c['lrs']} initial LR(s) × optimisers "
             f"{', '.join(c['optimizers'])} × {c['seeds']} seed(s). Score: final test accuracy (a diverged run "
             "scores 0). Regret: per task and seed, the best final test accuracy any main-study controller "
             "reached at any initial LR and optimiser, minus this run's (percentage points). Rank: within each "
             "task × optimiser × initial LR × seed, 1 = best, ties averaged. *Italic* rows: learning-rate-free "
             "optimisers with the constant controller at their default LR, scored against the same oracle "
             "(no rank).", ""]
    rows, headers = _rows(tables), _headers(tables)
    for key in ("overall", "per_lr", "per_lr_ref", "per_task", "paired"):
        lines += [f"## {TITLES[key]}", "", "| " + " | ".join(headers[key]) + " |",
                  "|" + "|".join(" --- " for _ in headers[key]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[key]]
        lines.append("")
    return "\n".join(lines)


def print_tables(tables: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    rows, headers = _rows(tables), _headers(tables)
    for key in ("overall", "per_lr", "per_lr_ref", "paired"):
        table = Table(title=TITLES[key])
        for h in headers[key]:
            table.add_column(h)
        for r in rows[key]:
            table.add_row(*r)
        console.print(table)


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
    from lrpilot.atomic import write_text_atomic
    from lrpilot.experiments.runner import Execution, run_study

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
    tables = build_tables(scores, plan.specs)
    tables["failed"] = failed
    write_text_atomic(out / "evaluation.md", render_markdown(tables))
    write_text_atomic(out / "evaluation.json", json.dumps(_jsonable(tables), indent=1))
    if console is not None:
        print_tables(tables, console)
        console.print(f"tables written to {out / 'evaluation.md'}")
    return tables
