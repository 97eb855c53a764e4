"""Does ``+guard`` undo only runs that needed it? Pairs every ``X+guard`` run with the plain ``X`` run of
the same task, LR, optimiser, seed, budget and interval, under one or more result folders (``lrpilot
compare`` / ``evaluate-controller`` outputs), and counts per guarded controller:

* ``runs``: paired runs; ``undid``: guarded runs with at least one undo;
* ``plain bad``: plain runs that diverged or collapsed, collapse judged independently of the guard:
  a final test accuracy within 1 point of what always predicting one class scores on the test split
  (the majority-class rate, or the share of any other class: a model collapsed onto the minority
  class of a 51/49 split scores 49%, which "within 1 point of the majority rate" alone would miss);
* ``false alarms``: guarded runs that undid although the plain run was fine (neither diverged nor
  collapsed); the issue's bar is zero;
* ``rescued``: plain run bad, guarded run neither diverged nor collapsed;
* ``undid at min LR``: guarded runs at the grid's smallest LR that undid at all (a too-small LR must
  never be taken for a collapse, whatever its plain twin did).

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/guard_alarms.py runs/h15/heldout-e20 [--import minilm_sentiment]

Prints a table and, with ``--json``, writes the counts and the list of false alarms.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections import defaultdict
from pathlib import Path

SUFFIX = "+guard"


def _runs(roots: list[Path]) -> list[dict]:
    runs = []
    for root in roots:
        for path in sorted(root.rglob("metrics.jsonl")):
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            final = next((line["final"] for line in lines if "final" in line), None)
            if final is not None:
                runs.append({"path": str(path.parent), "final": final, "config": final["config"]})
    return runs


def _class_rates(config: dict, cache: dict[str, list[float]]) -> list[float]:
    """The test accuracy of always predicting each class (the class shares of the test split of the run's
    task, with the run's task options: other data or other classes have other shares)."""
    options = config.get("task_options") or {}
    name = json.dumps([config["task"], options], sort_keys=True)
    if name not in cache:
        import torch

        from lrpilot.training import get_task
        from lrpilot.training.loading import load_splits

        task = get_task(config["task"])
        labels = load_splits(task.with_overrides(**options) if options else task, config.get("data_dir")).test.labels
        cache[name] = [float(c) / len(labels) for c in torch.bincount(labels)]
    return cache[name]


def _bad(final: dict, rates: list[float]) -> bool:
    acc = final.get("test_acc")
    return bool(final["diverged"]) or acc is None or any(abs(acc - rate) <= 0.01 for rate in rates)


def count(roots: list[Path]) -> dict:
    runs = _runs(roots)
    key = lambda c: json.dumps({k: v for k, v in c.items() if k != "controller"}, sort_keys=True)  # noqa: E731
    plain = {(r["config"]["controller"], key(r["config"])): r for r in runs if not r["config"]["controller"].endswith(SUFFIX)}
    rates: dict[str, list[float]] = {}
    table: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("runs", "undid", "plain_bad", "false_alarms", "rescued", "guarded_bad", "undid_min_lr"), 0))
    min_lr = {}
    for r in runs:
        task, lr = r["config"]["task"], r["config"]["lr"]
        min_lr[task] = min(min_lr.get(task, lr), lr)
    alarms = []
    for r in runs:
        spec = r["config"]["controller"]
        if not spec.endswith(SUFFIX):
            continue
        twin = plain.get((spec[: -len(SUFFIX)], key(r["config"])))
        if twin is None:
            continue
        rate = _class_rates(r["config"], rates)
        row = table[spec]
        undid = r["final"].get("undos", 0) > 0
        plain_bad, guarded_bad = _bad(twin["final"], rate), _bad(r["final"], rate)
        row["runs"] += 1
        row["undid"] += undid
        row["plain_bad"] += plain_bad
        row["guarded_bad"] += guarded_bad
        row["rescued"] += plain_bad and not guarded_bad
        row["undid_min_lr"] += undid and r["config"]["lr"] == min_lr[r["config"]["task"]]
        if undid and not plain_bad:
            row["false_alarms"] += 1
            alarms.append({"run": r["path"], "undos": r["final"]["undos"], "plain_test_acc": twin["final"]["test_acc"],
                           "guarded_test_acc": r["final"]["test_acc"]})
    return {"counts": {k: dict(v) for k, v in sorted(table.items())}, "false_alarms": alarms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--import", dest="imports", action="append", default=[], help="module registering tasks")
    parser.add_argument("--json", help="also write the counts here")
    args = parser.parse_args()
    for module in args.imports:
        importlib.import_module(module)
    result = count(args.roots)
    print(f"{'controller':<22} {'runs':>5} {'undid':>6} {'plain bad':>10} {'false alarms':>13} {'rescued':>8} "
          f"{'undid at min LR':>16}")
    for spec, row in result["counts"].items():
        print(f"{spec:<22} {row['runs']:>5} {row['undid']:>6} {row['plain_bad']:>10} {row['false_alarms']:>13} "
              f"{row['rescued']:>8} {row['undid_min_lr']:>16}")
    for alarm in result["false_alarms"]:
        print(f"false alarm: {alarm}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
