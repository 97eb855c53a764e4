"""Which runs of an ``evaluate-controller`` / ``compare`` folder ended collapsed, per controller.

A run is collapsed when its final test accuracy is within ``--within`` points (default 2) of the majority class's
share of the test split (the run's task, with its options), or it diverged. Session 26 used it on the
``minilm-products`` probe (``benchmarks/minilm_products_probe.sh``, docs/controller.md).

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/collapse_count.py runs/s26/products --import minilm_products
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

from guard_alarms import _class_rates, _runs


def table(roots: list[Path], within: float = 2.0) -> dict[str, list[dict]]:
    rates: dict[str, list[float]] = {}
    out: dict[str, list[dict]] = {}
    for run in _runs(roots):
        config, final = run["config"], run["final"]
        majority = max(_class_rates(config, rates))
        acc = final.get("test_acc")
        collapsed = bool(final["diverged"]) or acc is None or abs(acc - majority) * 100 <= within
        out.setdefault(config["controller"], []).append(
            {"lr": config["lr"], "seed": config["seed"], "test_acc": acc, "majority": majority, "collapsed": collapsed})
    for rows in out.values():
        rows.sort(key=lambda r: (r["lr"], r["seed"]))
    return dict(sorted(out.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--import", dest="imports", action="append", default=[], help="module registering tasks")
    parser.add_argument("--within", type=float, default=2.0, help="points from the majority share (default 2)")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()
    for module in args.imports:
        importlib.import_module(module)
    result = table(args.roots, args.within)
    majority = {r["majority"] for rows in result.values() for r in rows}
    print(f"majority-class share of the test split: {', '.join(f'{100 * m:.1f}%' for m in sorted(majority))}")
    print("| controller | runs (LR/seed: test acc, * collapsed) | collapsed |\n| --- | --- | --- |")
    for spec, rows in result.items():
        cells = ", ".join(f"{r['lr']:g}/s{r['seed']}: {100 * r['test_acc']:.1f}{'*' if r['collapsed'] else ''}"
                          for r in rows)
        print(f"| `{spec}` | {cells} | {sum(r['collapsed'] for r in rows)} of {len(rows)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
