"""Is a collapse rescued? Final test accuracy per controller and initial LR from ``lrpilot compare`` folders,
with each run's undos, and each setting's distance to the same controller started at a reference LR.

    .venv/bin/python benchmarks/guard_rescue.py runs/h15/bert-e1 --reference-lr 1e-4 [--json out.json]

Folders of different control intervals may be given together: rows are keyed by (interval, controller,
LR). Prints a Markdown table: mean test accuracy over seeds (each seed's in brackets), undos per run,
and mean accuracy minus that of the same controller at the reference LR (same interval), in points.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def collect(roots: list[Path]) -> dict[tuple[str, str, float], list[dict]]:
    rows: dict[tuple[str, str, float], list[dict]] = defaultdict(list)
    for root in roots:
        for path in sorted(root.rglob("metrics.jsonl")):
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            final = next((line["final"] for line in lines if "final" in line), None)
            if final is None:
                continue
            config = final["config"]
            key = (config.get("interval") or "1", config["controller"], float(config["lr"]))
            rows[key].append({"seed": config["seed"], "acc": final["test_acc"] or 0.0, "undos": final.get("undos", 0),
                              "diverged": final["diverged"]})
    return rows


def table(rows: dict[tuple[str, str, float], list[dict]], reference_lr: float) -> list[dict]:
    out = []
    for (interval, controller, lr), runs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        runs = sorted(runs, key=lambda r: r["seed"])
        mean = statistics.mean(r["acc"] for r in runs)
        ref = rows.get((interval, controller, reference_lr))
        delta = None if ref is None else 100 * (mean - statistics.mean(r["acc"] for r in ref))
        out.append({"interval": interval, "controller": controller, "lr": lr, "seeds": len(runs),
                    "acc": [r["acc"] for r in runs], "mean_acc": mean, "undos": [r["undos"] for r in runs],
                    "diverged": sum(r["diverged"] for r in runs), "vs_reference_points": delta})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--reference-lr", type=float, default=1e-4)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = table(collect(args.roots), args.reference_lr)
    print(f"| interval | controller | LR | test acc, mean (per seed) | undos per run | vs same at {args.reference_lr:g} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        seeds = ", ".join(f"{100 * a:.1f}" for a in r["acc"])
        delta = "" if r["vs_reference_points"] is None or r["lr"] == args.reference_lr else \
            f"{r['vs_reference_points']:+.1f}"
        print(f"| {r['interval']} | `{r['controller']}` | {r['lr']:g} | {100 * r['mean_acc']:.1f} ({seeds}) | "
              f"{', '.join(map(str, r['undos']))} | {delta} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
