"""Choose a behaviour-cloning teacher on training-distribution tasks (never the held-out ones).

    .venv/bin/python benchmarks/teacher_rules.py --epochs 4 8 20     # 3 tasks x 4 LRs x 2 seeds per budget

Runs each hand rule of ``lrpilot.controller.teachers.TEACHERS`` directly as a controller
(its registered spec, ``NAME:acts=a4|a5``: its multiplier snapped to the action set ×{0.1,0.5,1,2}
(a4) or ×{0.1,0.5,1,1.5,2} (a5), as a cloned policy would act; ``bold``'s spec is
``bold-features``) next to ``rule`` and ``constant``, on the registered synthetic tasks
``teacher-mlp``, ``gmm-mlp`` and ``seq-cnn`` (the families the policy is trained on), with Adam
from initial LRs 1e-5..1e-2. Prints, per budget, each rule's mean regret (points below the best
run of the task and seed) per initial LR and its mean test accuracy minus ``rule``'s per initial LR.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

CANDIDATES = ("bold-anneal-streak:acts=a4", "bold-anneal-streak:acts=a5", "bold-anneal-streakup:acts=a5",
              "bold-features:acts=a5", "bold-anneal:acts=a5")
"""Teacher controllers (:class:`lrpilot.controller.teachers.FeatureTeacher` specs) compared with ``rule``."""


def summarize(root: Path) -> dict[str, dict[str, dict[float, float]]]:
    """Per controller: regret and gap to ``rule`` (points) per initial LR, and the overall mean regret."""
    acc: dict[str, dict[tuple, float]] = {}
    for path in root.glob("runs/*/metrics.jsonl"):
        final = json.loads(path.read_text().splitlines()[-1]).get("final")
        if final:
            c = final["config"]
            acc.setdefault(c["controller"], {})[(c["task"], c["seed"], c["lr"])] = final["test_acc"] or 0.0
    oracle: dict[tuple, float] = {}
    for runs in acc.values():
        for (task, seed, _), a in runs.items():
            oracle[(task, seed)] = max(oracle.get((task, seed), 0.0), a)
    out = {}
    for ctrl, runs in acc.items():
        lrs = sorted({k[2] for k in runs})
        regret = {lr: float(np.mean([100 * (oracle[(t, s)] - a) for (t, s, l), a in runs.items() if l == lr])) for lr in lrs}
        gap = {lr: float(np.mean([100 * (a - acc["rule"][(t, s, l)]) for (t, s, l), a in runs.items() if l == lr]))
               for lr in lrs}
        out[ctrl] = {"regret": regret, "gap_to_rule": gap,
                     "mean_regret": float(np.mean([100 * (oracle[(t, s)] - a) for (t, s, _), a in runs.items()]))}
    return out


def main() -> None:
    from lrpilot.experiments.runner import Execution, run_study
    from lrpilot.experiments.study import Study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[4, 8, 20])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", help="also write the summaries here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in args.epochs:
            study = Study(tasks=("teacher-mlp", "gmm-mlp", "seq-cnn"), controllers=(*CANDIDATES, "rule", "constant"),
                          lrs=(1e-5, 1e-4, 1e-3, 1e-2), optimizers=("adam",), seeds=args.seeds, epochs=epochs,
                          device="cpu", reference="rule")
            run_study(study, Path(tmp) / f"e{epochs}", Execution(workers=2, progress=False))
            results[epochs] = summary = summarize(Path(tmp) / f"e{epochs}")
            print(f"\n{epochs} epochs: mean regret | regret per initial LR | test acc - rule per initial LR (points)")
            for ctrl, row in sorted(summary.items(), key=lambda kv: kv[1]["mean_regret"]):
                print(f"{ctrl:45s} {row['mean_regret']:6.2f} | " + " ".join(f"{v:6.2f}" for v in row["regret"].values())
                      + " | " + " ".join(f"{v:+6.2f}" for v in row["gap_to_rule"].values()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
