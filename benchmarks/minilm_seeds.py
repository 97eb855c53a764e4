"""Issue #16's (c) on MiniLM with more seeds: each policy's test accuracy minus ``rule``'s per cell, paired by seed.

    .venv/bin/python benchmarks/minilm_seeds.py runs/s26/seeds [--check docs/data/s25 docs/data/minilm-s14] [--json F]

Reads the two ``evaluate-controller`` folders that ``benchmarks/minilm_seeds.sh OUTDIR`` writes (``minilm-e5`` and
``minilm-e5-i0.25``). Per grid, initial LR and policy: the per-seed accuracies, the mean difference against ``rule``
over all seeds (95% t interval, Wilcoxon p), and the same over seeds 0-1 only (the issue's grid). ``--check
DIR[@OLD=NEW,...] ...`` compares seeds 0-1 with committed ``evaluation.json`` copies of the same grids (files
``DIR/minilm-e5*.json``, their controllers renamed OLD -> NEW: a committed grid may name today's policies otherwise)
and prints how many runs match and every run that differs: the runs are deterministic, so they must all match.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ppo_heldout import grid_scores

from lrpilot.experiments.controller_eval import scores_from_evaluation
from lrpilot.experiments.scoring import Score
from lrpilot.experiments.stats import paired_comparison

GRIDS = ("minilm-e5", "minilm-e5-i0.25")


def cells(scores: list[Score]) -> dict[tuple[str, float], dict[int, float]]:
    out: dict[tuple[str, float], dict[int, float]] = {}
    for s in scores:
        if s.lr is None:  # an LR-free optimiser's run
            continue
        out.setdefault((s.controller, float(s.lr)), {})[s.seed] = 100 * s.test_acc
    return out


def compare(table: dict, policy: str, lr: float, seeds: list[int]) -> dict:
    mine, rule = table.get((policy, lr), {}), table.get(("rule", lr), {})
    seeds = [s for s in seeds if s in mine and s in rule]
    t = paired_comparison([mine[s] for s in seeds], [rule[s] for s in seeds])
    return {"n": len(seeds), "mean": round(t.difference.mean, 2), "low": round(t.difference.low, 2),
            "high": round(t.difference.high, 2), "wins": t.wins, "ties": t.ties, "losses": t.losses,
            "p": None if t.p_value is None else round(t.p_value, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--check", nargs="*", default=[], metavar="DIR[@OLD=NEW,...]")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report: dict = {}
    for grid in GRIDS:
        table = cells(grid_scores(grid, args.root / grid))
        for check in args.check:
            directory, _, renames = check.partition("@")
            rename = dict(pair.split("=", 1) for pair in renames.split(",") if pair)
            committed = Path(directory) / f"{grid}.json"
            if not committed.exists():
                continue
            same = 0
            for (controller, lr), runs in cells(scores_from_evaluation(committed)).items():
                for seed, acc in runs.items():
                    new = table.get((rename.get(controller, controller), lr), {}).get(seed)
                    if new is None:
                        continue
                    if abs(new - acc) < 1e-9:
                        same += 1
                    else:
                        print(f"DIFFERS {grid} {controller} lr={lr:g} seed {seed}: committed {acc:.2f}, now {new:.2f}")
            print(f"{grid}: {same} runs as committed in {committed}")
        policies = sorted({c for c, _ in table if c != "rule"})
        lrs = sorted({lr for _, lr in table})
        print(f"\n## {grid}\n\n| LR | controller | test acc per seed | vs rule, all seeds (95% CI, W/T/L, p) "
              "| vs rule, seeds 0-1 |\n| --- | --- | --- | --- | --- |")
        for lr in lrs:
            for c in ["rule"] + policies:
                runs = table.get((c, lr), {})
                accs = ", ".join(f"{runs[s]:.1f}" for s in sorted(runs))
                if c == "rule":
                    print(f"| {lr:g} | `rule` | {accs} | | |")
                    continue
                every, first = compare(table, c, lr, sorted(runs)), compare(table, c, lr, [0, 1])
                report[f"{grid} {c} lr={lr:g}"] = {"per_seed": runs, "all": every, "seeds_0_1": first,
                                                   "rule_per_seed": table.get(("rule", lr), {})}
                print(f"| {lr:g} | `{c}` | {accs} | {every['mean']:+.2f} ({every['low']:+.2f} to {every['high']:+.2f}, "
                      f"{every['wins']}/{every['ties']}/{every['losses']}, p = {every['p']}) n = {every['n']} "
                      f"| {first['mean']:+.2f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
