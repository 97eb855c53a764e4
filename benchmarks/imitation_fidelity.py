"""How faithfully behaviour cloning copies its teacher, on teacher states from tasks it was not cloned on.

    .venv/bin/python benchmarks/imitation_fidelity.py                       # bold-anneal-streak, x{0.1,0.5,1,2}
    .venv/bin/python benchmarks/imitation_fidelity.py --teacher bold-anneal-streakup --actions 0.1,0.5,1,1.5,2

Collects the teacher's rollouts on the population env (synthetic families, 64 members) with
seed 0 (training data, ``--steps`` vector steps) and seed 7 (validation: 40 steps, other tasks),
clones the teacher on the first ``n`` steps for several ``n`` (and with ``--bc-augment``-style
progress copies), and prints the agreement with the teacher on the validation states, overall
and late in the budget (progress >= 0.7, where the teachers anneal). A policy can only be as
good as its teacher where it agrees with it.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    from lrpilot.controller.actions import ActionSpec
    from lrpilot.controller.features import FEATURE_INDEX
    from lrpilot.controller.teachers import TEACHERS
    from lrpilot.learn.imitation import augment_progress, behaviour_clone
    from lrpilot.learn.rollouts import collect, policy_predictor, synthetic_distribution

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="bold-anneal-streak", choices=list(TEACHERS))
    parser.add_argument("--actions", default="0.1,0.5,1,2")
    parser.add_argument("--steps", type=int, default=200, help="training rollout steps (64 pairs each)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    spec = ActionSpec.parse(args.actions)
    env = dict(distribution=synthetic_distribution(), actions=args.actions, num_envs=64, groups=4, workers=2,
               evaluate_test=False)
    t = time.perf_counter()
    train = collect(args.teacher, steps=args.steps, seed=0, **env)
    val = collect(args.teacher, steps=40, seed=7, **env)
    print(f"collected {len(train['actions'])} training and {len(val['actions'])} validation pairs in "
          f"{time.perf_counter() - t:.0f} s")
    late = val["obs"][:, FEATURE_INDEX["progress"]] >= 0.7
    print(f"{'cloning data':38s} {'train agree':>11s} {'val agree':>9s} {'val late':>9s} {'val early':>9s}")
    for steps, copies in ((40, 0), (40, 4), (args.steps // 2, 0), (args.steps, 0), (args.steps, 1)):
        x, y = train["obs"][: steps * 64], train["actions"][: steps * 64]
        extra_x, extra_y = augment_progress(x, args.teacher, spec, copies, seed=0)
        net = behaviour_clone(np.concatenate([x, extra_x]), np.concatenate([y, extra_y]), spec.size, epochs=100, seed=0)
        pred = policy_predictor(net)(val["obs"])
        ok = pred == val["actions"]
        print(f"{f'{steps} steps ({steps * 64} pairs), {copies} copies':38s} {net.agreement:11.3f} {ok.mean():9.3f} "
              f"{ok[late].mean():9.3f} {ok[~late].mean():9.3f}")


if __name__ == "__main__":
    main()
