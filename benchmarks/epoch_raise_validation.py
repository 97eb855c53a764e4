"""Session 27, stage 1 (V-b): the validation set at interval 0.25, `policy:default` against `epoch-raise:policy=default`.

The shipped recipe's validation set (configs/ppo-residual-select.toml: the four validation tasks, its steep fine-tune
played from 1e-5, 3e-5, 1e-4 and 3e-4), at interval 0.25 only (per epoch the two are the same controller), budgets 6
and 20, seeds 0-3; regret per task and the paired difference (candidate minus default; Wilcoxon).

    OMP_NUM_THREADS=1 PYTHONPATH=benchmarks .venv/bin/python benchmarks/epoch_raise_validation.py \\
        --json docs/data/s27/validation.json                  # and --power 0.5 --json docs/data/s27/validation-p05.json
    # after the held-out grid: --budgets 4 (--power 1 and 0.5), whether a 4-epoch budget would have shown its cost
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from dataclasses import replace

from epoch_raise import EpochRaise
from scipy import stats

from lrpilot.controller import from_spec
from lrpilot.learn.validation import VALIDATION_TASKS, ValidationSet, finetune_validation_task

FINETUNE_LRS = (1e-5, 3e-5, 1e-4, 3e-4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--policy", default="default")
    parser.add_argument("--power", type=float, default=1.0, help="the candidate's power (epoch-raise's parameter)")
    parser.add_argument("--budgets", default="6,20", help="epoch budgets (the recipes' validation set: 6,20)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    vs = ValidationSet(intervals=("0.25",), workers=args.workers, seeds=tuple(range(args.seeds)),
                       budgets=tuple(int(b) for b in args.budgets.split(",")),
                       tasks=VALIDATION_TASKS + (finetune_validation_task("steep"),))
    vs = replace(vs, task_lrs={vs.labels[-1]: FINETUNE_LRS})
    factories = {f"policy:{args.policy}": functools.partial(from_spec, f"policy:{args.policy}"),
                 f"epoch-raise:policy={args.policy},power={args.power:g}": functools.partial(EpochRaise, args.policy,
                                                                                           args.power)}
    results = {}
    for name, make in factories.items():
        start = time.perf_counter()
        results[name] = vs.evaluate(make)
        r = results[name]
        print(f"{name}: regret {r['mean_regret']:.3f} (n={r['n']}), per task "
              + ", ".join(f"{k} {v:.2f}" for k, v in r["per_task_regret"].items())
              + f"; {time.perf_counter() - start:.0f} s", flush=True)
    (_, ra), (_, rb) = results.items()
    diffs = [y["regret"] - x["regret"] for x, y in zip(ra["rows"], rb["rows"])]
    nonzero = [d for d in diffs if d != 0]
    p = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else None
    summary = {"seeds": args.seeds, "n": len(diffs), "candidate_minus_default": statistics.fmean(diffs),
               "better": sum(d < 0 for d in diffs), "ties": len(diffs) - len(nonzero), "worse": sum(d > 0 for d in diffs),
               "wilcoxon_p": p,
               "per_budget": {bud: statistics.fmean(d for d, x in zip(diffs, ra["rows"]) if x["budget"] == bud)
                              for bud in vs.budgets}}
    print(json.dumps(summary, indent=1))
    if args.json:
        keep = ("label", "budget", "interval", "session_seed", "initial_lr", "acc", "regret", "diverged")
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "results": {
                name: {"mean_regret": r["mean_regret"], "per_task_regret": r["per_task_regret"],
                       "rows": [{k: row.get(k) for k in keep} for row in r["rows"]]}
                for name, r in results.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
