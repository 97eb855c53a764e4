"""Does a collapse last? Per run, the validations whose predictions all but fall in one class, and what follows.

A validation is *collapsed* when at least ``--share`` (default 0.95) of its predictions fall in one class
(``val_top_share``, recorded by every run since the guard needed it); a run's collapses count from the first
validation that was not collapsed on (a fresh classifier head often predicts one class at first). For each run under the given folders
(``lrpilot compare`` / ``evaluate-controller`` outputs): the number of validations, the number collapsed, the
first one collapsed, how many of the validations after the first collapse are collapsed too (1.0: it never
recovered), and the final test accuracy. Session 26 compared a training fine-tune held at LRs past its cliff
with MiniLM, which stays collapsed (docs/controller.md).

    .venv/bin/python benchmarks/collapse_persistence.py runs/s26/steep-constant [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import fmean


def run_rows(path: Path, share: float) -> dict | None:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    final = next((line["final"] for line in lines if "final" in line), None)
    steps = [line for line in lines if "final" not in line and not line.get("undone")]
    if final is None or not steps:
        return None
    flags = [(line.get("val_top_share") or 0.0) >= share for line in steps]
    # a fresh head often predicts one class before it has learned anything: only a collapse after a
    # validation that discriminated counts
    learned = flags.index(False) if not all(flags) else len(flags)
    first = next((i for i in range(learned, len(flags)) if flags[i]), None)
    after = flags[first + 1:] if first is not None else []
    config = final["config"]
    return {"controller": config["controller"], "lr": config["lr"], "seed": config["seed"], "validations": len(flags),
            "collapsed": sum(flags), "first": None if first is None else first + 1,
            "after_first": round(fmean(after), 3) if after else None, "test_acc": final.get("test_acc")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--share", type=float, default=0.95)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = [r for root in args.roots for p in sorted(root.rglob("metrics.jsonl"))
            if (r := run_rows(p, args.share)) is not None]
    cells: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for r in rows:
        cells[(r["controller"], r["lr"])].append(r)
    print("| controller | LR | runs | with a collapse | share of the validations after it collapsed too, per run "
          "| test acc (mean) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (controller, lr), runs in sorted(cells.items()):
        hit = [r for r in runs if r["first"] is not None]
        after = ", ".join(f"{r['after_first']:.2f}" for r in hit if r["after_first"] is not None) or "-"
        print(f"| `{controller}` | {lr:g} | {len(runs)} | {len(hit)} | {after} "
              f"| {100 * fmean(r['test_acc'] for r in runs):.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
