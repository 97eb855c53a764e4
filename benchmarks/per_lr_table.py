"""A Markdown table of final test accuracy per controller and initial LR, from ``evaluate-controller`` output.

    .venv/bin/python benchmarks/per_lr_table.py runs/h18/minilm-e5/evaluation.json [--versus rule] [--task T]
    .venv/bin/python benchmarks/per_lr_table.py docs/data/minilm-s14/minilm-e5.json   # exported by ppo_heldout.py

One row per controller (the LR-free optimisers last, in one column, since they have no LR); each cell is
the mean test accuracy over the seeds (each seed's in brackets), its difference from ``--versus`` on the
same LR and seeds, and the undos per run where any run undid. Built from the ``scores`` every
``evaluation.json`` keeps (and ``benchmarks/ppo_heldout.py --export`` writes), so it needs no run folders.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from statistics import mean


def cell(accs: list[float], versus: list[float] | None, undos: list[int]) -> str:
    text = f"{100 * mean(accs):.1f} ({', '.join(f'{100 * a:.1f}' for a in accs)})"
    if versus is not None and len(versus) == len(accs):
        text += f", {100 * (mean(accs) - mean(versus)):+.1f}"
    if any(undos):
        text += f"; undos {', '.join(map(str, undos))}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", help="an evaluation.json written by lrpilot evaluate-controller")
    parser.add_argument("--versus", default="rule", help="the controller each cell is compared with")
    parser.add_argument("--task", help="the task to tabulate (needed when the evaluation has several)")
    args = parser.parse_args()
    with open(args.evaluation) as handle:
        evaluation = json.load(handle)
    scores = evaluation["scores"]
    tasks = list(dict.fromkeys(s["task"] for s in scores))
    if args.task is None and len(tasks) > 1:
        parser.error(f"the evaluation has tasks {', '.join(tasks)}: choose one with --task")
    task = args.task or tasks[0]
    runs: dict[tuple[str, float | None], list[dict]] = defaultdict(list)
    for score in (s for s in scores if s["task"] == task):
        runs[(score["controller"], None if score["lrfree"] else score["lr"])].append(score)
    for group in runs.values():
        group.sort(key=lambda s: s["seed"])
    lrs = sorted({s["lr"] for s in scores if not s["lrfree"]})
    print(f"| controller | {' | '.join(f'LR {lr:g}' for lr in lrs)} |")
    print(f"| --- | {' | '.join('---' for _ in lrs)} |")
    for controller in dict.fromkeys(s["controller"] for s in scores if not s["lrfree"]):
        cells = []
        for lr in lrs:
            group = runs.get((controller, lr), [])
            versus = runs.get((args.versus, lr)) if controller != args.versus else None
            cells.append(cell([s["test_acc"] for s in group], versus and [s["test_acc"] for s in versus],
                              [s.get("undos", 0) for s in group]) if group else "–")
        print(f"| `{controller}` | {' | '.join(cells)} |")
    for controller in dict.fromkeys(s["controller"] for s in scores if s["lrfree"]):
        group = runs.get((controller, None), [])
        if group:
            print(f"| {controller} (no LR) | {cell([s['test_acc'] for s in group], None, [])} |"
                  f"{' |' * (len(lrs) - 1)}")


if __name__ == "__main__":
    main()
