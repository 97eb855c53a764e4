"""Issue #16's held-out verdict: a learned policy against its start, `bold`, `bold+guard` and `rule`, pooled over grids.

    .venv/bin/python benchmarks/ppo_heldout.py --policy policy:runs/h16/long-s0/ppo-residual-1m \
        --grid e4=runs/h15/short-e4 --grid e4-i0.25=runs/h15/short-e4-i025 ... --json out.json

Each ``--grid LABEL=DIR`` is an ``lrpilot evaluate-controller`` output folder: its ``runs/<controller>``
studies, or where those are gone, the per-run scores its ``evaluation.json`` keeps (or that file itself:
``docs/data/heldout-s12/`` holds the ones the docs quote). Runs are paired by grid, task, optimiser, initial LR
and seed; regret is measured against the
per-task oracle of each grid (as ``evaluate-controller`` does), so the pooled numbers are the grids'
numbers put side by side. Printed and written:

* per grid and pooled: mean regret of every controller (LR-free optimisers included as references);
* (a) and (b): the policy's test accuracy minus each other controller's, paired over the pooled grid
  (mean points, wins/ties/losses, Wilcoxon p), and per budget;
* (c): the policy's mean test accuracy minus ``rule``'s at each initial LR and grid, with the lowest.

``--export DIR`` also writes each grid's per-run scores (controllers renamed) to ``DIR/LABEL.json``, a few tens of
kilobytes that ``--grid LABEL=DIR/LABEL.json`` reads back: how ``docs/data/heldout-s12/`` was made.

A label given twice (``--grid e4=docs/data/heldout-s12/e4.json --grid e4=runs/new-e4``) pools both sources into
one grid: how a new controller's runs join grids run before it (the oracle is then over both).

``--rename OLD=NEW`` renames a controller in every grid before pairing: grids run before issue #16 named
the behaviour clone ``policy:default`` (``--rename policy:default=policy:clone`` pools them with grids that
ran it as ``policy:clone``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
from pathlib import Path

from lrpilot.experiments.controller_eval import collect_scores, scores_from_evaluation
from lrpilot.experiments.scoring import Score, paired_test, regret_and_rank


def grid_scores(label: str, root: Path, rename: dict[str, str] | None = None) -> list[Score]:
    """Every finished run under ``root/runs`` (else in ``root``'s evaluation.json), its task renamed
    ``task@label`` so grids never pair."""
    scores: list[Score] = []
    if (root / "runs").is_dir():
        for study in sorted((root / "runs").iterdir()):
            if (study / "study.json").exists():
                scores += collect_scores(study, lrfree=study.name == "lrfree")
    else:
        scores = scores_from_evaluation(root)
    rename = rename or {}
    return [dataclasses.replace(s, task=f"{s.task}@{label}", controller=rename.get(s.controller, s.controller))
            for s in scores]


def mean_regret(scores: list[Score], regret: list[float]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for s, r in zip(scores, regret):
        by.setdefault(s.controller, []).append(100 * r)
    return {name: round(statistics.fmean(v), 2) for name, v in by.items()}


def paired(scores: list[Score], policy: str, other: str) -> dict[str, float | str]:
    """The paired comparison, and which side the Wilcoxon signed ranks favour (``p_value`` is two-sided, so a mean
    gain can come with a significant p that favours the other: a few large wins among many small losses)."""
    t = paired_test(scores, policy, other)
    d, ranks = t.difference, t.signed_rank_sum
    return {"n": d.n, "mean_diff_points": round(100 * d.mean, 2) if d.n else math.nan, "wins": t.wins,
            "ties": t.ties, "losses": t.losses, "p_value": t.p_value,
            "signed_ranks_favour": "policy" if ranks > 0 else "other" if ranks < 0 else "neither"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="the evaluated policy's spec, as its runs name it")
    parser.add_argument("--versus", default="policy:clone,bold,bold+guard,rule")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                        help="a controller's name in the grids -> its name here (e.g. policy:default=policy:clone)")
    parser.add_argument("--grid", action="append", required=True, metavar="LABEL=DIR")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--export", metavar="DIR", help="also write each grid's per-run scores, renamed, to DIR/LABEL.json "
                        "(what --grid LABEL=DIR/LABEL.json reads back)")
    args = parser.parse_args()
    grids: dict[str, list[str]] = {}
    for g in args.grid:
        label, root = g.split("=", 1)
        grids.setdefault(label, []).append(root)
    rename = dict(r.split("=", 1) for r in args.rename)
    versus = [v for v in args.versus.split(",") if v]
    pooled: list[Score] = []
    out: dict = {"policy": args.policy, "grids": {}, "paired_per_grid": {}}
    for label, roots in grids.items():
        scores = [s for root in roots for s in grid_scores(label, Path(root), rename)]
        root = "+".join(roots)
        if args.export:
            Path(args.export).mkdir(parents=True, exist_ok=True)
            rows = [{**dataclasses.asdict(s), "task": s.task.rsplit("@", 1)[0]} for s in scores]
            rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
            (Path(args.export) / f"{label}.json").write_text(
                json.dumps({"grid": label, "source": str(root), "scores": rows}, separators=(",", ":")) + "\n")
        regret, _ = regret_and_rank(scores)
        out["grids"][label] = mean_regret(scores, regret)
        out["paired_per_grid"][label] = {v: paired(scores, args.policy, v) for v in versus}
        pooled += scores
    regret, _ = regret_and_rank(pooled)
    out["pooled_regret"] = mean_regret(pooled, regret)
    out["paired_pooled"] = {v: paired(pooled, args.policy, v) for v in versus}
    rule = {s.block: s.test_acc for s in pooled if s.controller == "rule"}
    cells: dict[str, list[float]] = {}
    for s in pooled:
        if s.controller == args.policy and s.block in rule:
            cells.setdefault(f"{s.task.split('@')[1]} lr={s.lr:g}", []).append(100 * (s.test_acc - rule[s.block]))
    out["vs_rule_per_lr_and_grid"] = {k: round(statistics.fmean(v), 2) for k, v in sorted(cells.items())}
    out["vs_rule_worst"] = min(out["vs_rule_per_lr_and_grid"].items(), key=lambda kv: kv[1]) if cells else None
    for label, row in out["grids"].items():
        print(label, " ".join(f"{k}={v}" for k, v in row.items()))
    print("pooled", " ".join(f"{k}={v}" for k, v in out["pooled_regret"].items()))
    for v, p in out["paired_pooled"].items():
        print(f"{args.policy} vs {v}: {p}")
    print("worst cell vs rule:", out["vs_rule_worst"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
