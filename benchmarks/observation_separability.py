"""Does the policy's observation tell a fine-tune at its right LR from a small model far below its own? (issue #16)

Session 23 found PPO trading the validation fine-tune (where raising the LR from 1e-4 or 3e-4 costs accuracy)
against the small from-scratch tasks (where raising it from 1e-4 is what helps). This plays the first decisions of
both kinds of run under ``policy:ppo-residual-fast`` (``START``: the start of the fine-tune recipes, and
``policy:default`` when sessions 23 and 24 ran this) on a recipe's validation tasks, keeps the encoder-v2
observation the policy acts on at each of them, and asks whether the two kinds can be told apart from it: the
cross-validated accuracy of a logistic regression (folds by session seed, so no run is in its own test fold) and of a
one-feature threshold, per decision and pooled, with the features that differ most (standardised mean difference).
Nothing here is the held-out grid.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/observation_separability.py configs/ppo-residual-window.toml \\
        --decisions 3 --seeds 0,1,2,3

``--compare POLICY,...`` (session 24) also says how far each policy moved from ``START`` on the same
observations, fine-tune and the others apart: the mean KL(start || policy) of the action distributions and the
share of observations where the greedy (deployed) action differs.
"""

from __future__ import annotations

START = "ppo-residual-fast"
"""The policy the observations are played with and distances are measured from (a fixed file: ``policy:default``
changed on 2026-12-05, and these sessions' numbers are this policy's)."""

import argparse
import time
from pathlib import Path

import numpy as np

from lrpilot.controller import from_spec
from lrpilot.controller.features import ObservationEncoder
from lrpilot.learn.pipeline import validation_set
from lrpilot.learn.recipe import load_recipe
from lrpilot.learn.validation import ValidationSet
from lrpilot.metrics import EpochMetrics


def first_observations(vs: ValidationSet, task: str, options: dict, lr: float, seed: int, budget: int,
                       decisions: int) -> list[np.ndarray]:
    """The encoder-v2 observations at the first ``decisions`` decisions of ``START`` (per epoch) on the
    validation set's environment of ``task`` (its optimiser and epoch size)."""
    env = vs._env(task, options, budget, None, undo=False)
    encoder = ObservationEncoder(2)
    controller = from_spec(f"policy:{START}")
    _, info = env.reset(options={"task": task, "initial_lr": lr, "session_seed": seed})
    controller.reset(lr, budget, env.intervals_per_epoch)
    seen = []
    for _ in range(decisions):
        seen.append(np.asarray(encoder.encode(env.history, lr, budget), dtype=float))
        _, _, terminated, truncated, info = env.step_decision(controller.act(EpochMetrics.from_dict(info["metrics"])))
        if terminated or truncated:
            break
    return seen


def cv_accuracy(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """Leave-one-seed-out accuracy of a logistic regression and of the best single-feature threshold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logistic, stump = [], []
    for held in np.unique(groups):
        train, test = groups != held, groups == held
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(x[train], y[train])
        logistic.append(model.score(x[test], y[test]))
        best = max(((f, t, s) for f in range(x.shape[1]) for t in np.unique(x[train, f]) for s in (1, -1)),
                   key=lambda fts: np.mean((fts[2] * (x[train, fts[0]] - fts[1]) > 0) == y[train]))
        f, t, s = best
        stump.append(float(np.mean((s * (x[test, f] - t) > 0) == y[test])))
    return float(np.mean(logistic)), float(np.mean(stump))


def moved_from_start(policy: str, x: np.ndarray, groups: list[np.ndarray]) -> list[tuple[float, float]]:
    """Per boolean mask in ``groups``: the mean KL(start || policy) of the action distributions on those rows of
    ``x``, and the share of them where the greedy actions differ (both policies residuals on the same rule, or both
    plain)."""
    import torch

    from lrpilot.controller.policy import load_policy

    start, other = load_policy(START), load_policy(policy.removeprefix("policy:"))
    if start.card["normalization"] is not None or other.card["normalization"] is not None:
        raise ValueError(f"{policy}: only policies without observation normalisation are compared here")
    with torch.no_grad():
        p, q = (torch.log_softmax(c.actor(torch.as_tensor(x, dtype=torch.float32)), -1) for c in (start, other))
    kl = (p.exp() * (p - q)).sum(-1).numpy()
    changed = start.predict(x) != other.predict(x)
    return [(float(kl[mask].mean()), float(changed[mask].mean())) for mask in groups]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path, help="the recipe (TOML) whose validation tasks to play")
    parser.add_argument("--seeds", default="0,1,2,3", help="session seeds")
    parser.add_argument("--decisions", type=int, default=3, help="first decisions kept per run")
    parser.add_argument("--finetune-lrs", default="1e-4,3e-4", help="the fine-tune's initial LRs (where raising costs)")
    parser.add_argument("--scratch-lrs", default="1e-4", help="the from-scratch tasks' initial LRs (where raising helps)")
    parser.add_argument("--budgets", default="6,20")
    parser.add_argument("--compare", default="", metavar="POLICIES",
                        help=f"policies (comma-separated) whose distance from policy:{START} to print")
    args = parser.parse_args()
    try:
        recipe = load_recipe(args.recipe)
        seeds = [int(s) for s in args.seeds.split(",")]
        budgets = [int(b) for b in args.budgets.split(",")]
        ft_lrs = [float(v) for v in args.finetune_lrs.split(",")]
        scratch_lrs = [float(v) for v in args.scratch_lrs.split(",")]
    except (OSError, ValueError) as err:
        parser.error(str(err))
    vs = validation_set(recipe.distribution(), 1)
    start = time.perf_counter()
    rows = []  # (decision, is_finetune, seed, label, obs)
    for label, (task, options) in zip(vs.labels, vs.tasks):
        finetune = "pretrain" in options
        for lr in ft_lrs if finetune else scratch_lrs:
            for seed in seeds:
                for budget in budgets:
                    for d, obs in enumerate(first_observations(vs, task, dict(options), lr, seed, budget,
                                                                 args.decisions)):
                        rows.append((d, finetune, seed, label, obs))
    print(f"{args.recipe}: {len(rows)} observations in {time.perf_counter() - start:.0f} s "
          f"(fine-tune from {args.finetune_lrs}, the other tasks from {args.scratch_lrs}; seeds {args.seeds})")
    print("| decisions | fine-tune / other observations | logistic regression (leave one seed out) | one-feature threshold |")
    print("| --- | --- | --- | --- |")
    for which in [[d] for d in range(args.decisions)] + [list(range(args.decisions))]:
        sel = [r for r in rows if r[0] in which]
        x = np.stack([r[4] for r in sel])
        y = np.array([r[1] for r in sel])
        groups = np.array([r[2] for r in sel])
        logistic, stump = cv_accuracy(x, y, groups)
        name = f"{which[0] + 1}" if len(which) == 1 else f"1–{args.decisions} pooled"
        print(f"| {name} | {int(y.sum())} / {int((~y).sum())} | {100 * logistic:.1f}% | {100 * stump:.1f}% |")
    x = np.stack([r[4] for r in rows if r[0] == 0])
    y = np.array([r[1] for r in rows if r[0] == 0])
    spread = x.std(axis=0) + 1e-9
    gap = (x[y].mean(axis=0) - x[~y].mean(axis=0)) / spread
    names = ObservationEncoder(2).feature_names
    print("features at the first decision, by |standardised mean difference| (fine-tune minus the others):")
    for f in np.argsort(-np.abs(gap))[:6]:
        print(f"  {names[f]}: {gap[f]:+.2f} (fine-tune {x[y, f].mean():+.3f}, others {x[~y, f].mean():+.3f})")
    if args.compare:
        x = np.stack([r[4] for r in rows])
        y = np.array([r[1] for r in rows])
        print(f"moved from policy:{START} at decisions 1–{args.decisions}: KL(start || policy), greedy actions "
              "that differ")
        print("| policy | fine-tune | the others |")
        print("| --- | --- | --- |")
        for policy in args.compare.split(","):
            (k1, d1), (k0, d0) = moved_from_start(policy, x, [y, ~y])
            print(f"| {policy} | {k1:.4f}, {100 * d1:.1f}% | {k0:.4f}, {100 * d0:.1f}% |")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
