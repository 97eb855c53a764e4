"""Would a guard that judges collapse on three signs (no spread) undo these plain runs? Session 28's tried change.

Session 28 tried, for ``+guard`` on a pretrained model deciding once per epoch, a collapse test on the first three
signs alone (one class, balanced labels, loss at chance: :func:`lrpilot.controller.guard.one_class_at_chance`), without the output-spread sign. A guarded
run is its plain twin decision for decision until the guard's first undo, and with that test the guard's verdict on
an interval does not depend on the run's earlier intervals. So for every plain run (a controller without ``+guard``)
under the given ``lrpilot compare`` / ``evaluate-controller`` folders, this finds the first interval such a guard would
undo (diverged, or the three signs) and pairs it with how the plain run ended (bad: diverged, or a final test accuracy
within 1 point of one class's share, as ``benchmarks/guard_alarms.py`` judges). A flagged run whose plain twin ended
fine is a false alarm (issue #15's bar: none). It found one at MiniLM 1e-5 per epoch, and the change was reverted
(docs/controller.md, session 28).

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/pretrained_guard_signs.py runs/s28/plain-e1 --import minilm_sentiment
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from guard_alarms import SUFFIX, _bad, _class_rates, _runs

from lrpilot.controller.guard import diverged, one_class_at_chance
from lrpilot.metrics import EpochMetrics


def first_undo(path: Path) -> int | None:
    """The first interval (1-based) the three-sign guard would undo in this run's metrics, or None."""
    for line in (path / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line) if line.strip() else {"final": None}
        if "final" in record:
            continue
        metrics = EpochMetrics.from_dict(record)
        if diverged(metrics) or one_class_at_chance(metrics):
            return metrics.epoch
    return None


def table(roots: list[Path]) -> list[dict]:
    rates: dict[str, list[float]] = {}
    rows = []
    for run in _runs(roots):
        config = run["config"]
        if config["controller"].endswith(SUFFIX):
            continue
        rows.append({"controller": config["controller"], "lr": config["lr"], "seed": config["seed"],
                     "test_acc": run["final"].get("test_acc"), "plain_bad": _bad(run["final"], _class_rates(config, rates)),
                     "first_undo": first_undo(Path(run["path"]))})
    return sorted(rows, key=lambda r: (r["controller"], r["lr"], r["seed"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--import", dest="imports", action="append", default=[], help="module registering tasks")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    for module in args.imports:
        importlib.import_module(module)
    rows = table(args.roots)
    print("| controller | LR | runs | would undo (epoch) | plain run bad | false alarms |\n| --- | --- | --- | --- | --- | --- |")
    for key in sorted({(r["controller"], r["lr"]) for r in rows}):
        cell = [r for r in rows if (r["controller"], r["lr"]) == key]
        flagged = [f"s{r['seed']}@{r['first_undo']}" for r in cell if r["first_undo"] is not None]
        alarms = sum(r["first_undo"] is not None and not r["plain_bad"] for r in cell)
        print(f"| `{key[0]}` | {key[1]:g} | {len(cell)} | {', '.join(flagged) or 'none'} | "
              f"{sum(r['plain_bad'] for r in cell)} | {alarms} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
