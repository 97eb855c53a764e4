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
from collections import defaultdict
from statistics import mean

from lrpilot.experiments.controller_eval import scores_from_evaluation
from lrpilot.experiments.scoring import Score


def cell(accs: list[float], versus: list[float] | None, undos: list[int]) -> str:
    text = f"{100 * mean(accs):.1f} ({', '.join(f'{100 * a:.1f}' for a in accs)})"
    if versus is not None and len(versus) == len(accs):
        text += f", {100 * (mean(accs) - mean(versus)):+.1f}"
    if any(undos):
        text += f"; undos {', '.join(map(str, undos))}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", help="an evaluation.json (or its folder) written by lrpilot evaluate-controller")
    parser.add_argument("--versus", default="rule", help="the controller each cell is compared with")
    parser.add_argument("--task", help="the task to tabulate (needed when the evaluation has several)")
    args = parser.parse_args()
    scores = scores_from_evaluation(args.evaluation)
    tasks = list(dict.fromkeys(s.task for s in scores))
    if args.task is None and len(tasks) > 1:
        parser.error(f"the evaluation has tasks {', '.join(tasks)}: choose one with --task")
    task = args.task or tasks[0]
    runs: dict[tuple[str, float | None], list[Score]] = defaultdict(list)
    for score in (s for s in scores if s.task == task):
        runs[(score.controller, score.lr)].append(score)  # an LR-free run's lr is None
    for group in runs.values():
        group.sort(key=lambda s: s.seed)
    lrs = sorted({s.lr for s in scores if not s.lrfree})

    def accs(group: list[Score]) -> list[float]:
        return [s.test_acc for s in group]  # a diverged run scores 0

    print(f"| controller | {' | '.join(f'LR {lr:g}' for lr in lrs)} |")
    print(f"| --- | {' | '.join('---' for _ in lrs)} |")
    for controller in dict.fromkeys(s.controller for s in scores if not s.lrfree):
        cells = []
        for lr in lrs:
            group = runs.get((controller, lr), [])
            versus = runs.get((args.versus, lr)) if controller != args.versus else None
            cells.append(cell(accs(group), versus and accs(versus), [s.undos for s in group]) if group else "–")
        print(f"| `{controller}` | {' | '.join(cells)} |")
    for controller in dict.fromkeys(s.controller for s in scores if s.lrfree):
        print(f"| {controller} (no LR) | {cell(accs(runs[(controller, None)]), None, [])} |{' |' * (len(lrs) - 1)}")


if __name__ == "__main__":
    main()
