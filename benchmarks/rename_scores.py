"""Write an ``evaluate-controller`` result's per-run scores under another controller name, optionally some seeds only.

Session 27 (docs/controller.md): a policy card's ``raise_power`` changes nothing with one decision per epoch, so the
per-epoch cells of a candidate that differs from ``policy:default`` only by it are the default's runs under the
candidate's name (checked against real runs: ``check-e4`` in benchmarks/raise_power_pool.sh). Several inputs are merged.

    .venv/bin/python benchmarks/rename_scores.py docs/data/s25/grid-e4.json --controller policy:candidate OUT.json
    .venv/bin/python benchmarks/rename_scores.py RUNS/minilm-1e-4-six RUNS/minilm-rest --seeds 0,1 OUT.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="evaluation.json files or folders, then the output file")
    parser.add_argument("--controller", help="the name every (non LR-free) run gets")
    parser.add_argument("--seeds", help="keep these seeds only (comma-separated)")
    args = parser.parse_intermixed_args()
    *inputs, out = args.inputs
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    scores = []
    for path in inputs:
        rows = json.loads((path / "evaluation.json" if path.is_dir() else path).read_text())["scores"]
        for row in rows:
            if seeds is not None and row["seed"] not in seeds:
                continue
            scores.append({**row, "controller": args.controller} if args.controller and not row["lrfree"] else row)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scores": scores}, indent=1) + "\n")
    print(f"{len(scores)} runs -> {out}")


if __name__ == "__main__":
    main()
