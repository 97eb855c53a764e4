"""Ship a trained policy as ``policy:NAME``: copy its two files into ``lrpilot/checkpoints/`` and complete its card.

    .venv/bin/python benchmarks/ship_policy.py runs/h16/fast-s0/ppo-residual-fast --as default \
        --shipped-as "policy:default since 2026-12-03: ..." --heldout runs/h16/s12-card-heldout.json

What the card gains (under ``provenance``), besides what ``train-controller`` already wrote (recipe,
validation curve, steps per second):

* ``training_curve``: SB3's ``rollout/ep_rew_mean`` from the run's TensorBoard log (the mean return against
  the twin over the last 100 finished episodes) at the first rollout and then every ``--every`` steps;
* ``shipped_as``: one sentence on when and why it was shipped;
* ``heldout_evaluation``: the JSON file given with ``--heldout`` (what ``benchmarks/ppo_heldout.py --json``
  writes, with any notes added), if given.

The weights are copied byte for byte (the sha256 is printed); a card with NaN (which policy files refuse) is not
written (replace NaN by null in the --heldout file first). The card keeps its ``name`` field as
trained unless ``--as`` differs, in which case ``name`` becomes ``--as`` (a file's name and its card agree).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from lrpilot.controller.policy import SHIPPED_DIR


def training_curve(tb_dir: Path, every: int) -> dict:
    """The mean return against the twin, from the run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(tb_dir.rglob("events.out.tfevents.*"))
    if not events:
        raise SystemExit(f"no TensorBoard events under {tb_dir}")
    points: dict[int, float] = {}
    for path in events:
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if "rollout/ep_rew_mean" in acc.Tags().get("scalars", []):
            points.update({e.step: e.value for e in acc.Scalars("rollout/ep_rew_mean")})
    steps = sorted(points)
    if not steps:
        raise SystemExit(f"no rollout/ep_rew_mean in {tb_dir}")
    kept = sorted(set([steps[0]] + [min(s for s in steps if s >= k) for k in range(every, steps[-1] + 1, every)]))
    return {"what": "SB3's rollout/ep_rew_mean: the mean episode return against the twin (the agent's final validation "
                    "log-loss improvement minus the twin's) over the last 100 finished episodes, read from the run's "
                    f"TensorBoard log ({tb_dir}), at the first rollout and then every {every:,} steps",
            "points": [{"mean_return_vs_twin": round(points[s], 4), "timesteps": s} for s in kept]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="the trained policy's path without suffix (PATH.json, PATH.safetensors)")
    parser.add_argument("--as", dest="name", required=True, help="the name to ship it under (policy:NAME)")
    parser.add_argument("--shipped-as", required=True, help="one sentence for provenance.shipped_as")
    parser.add_argument("--heldout", help="a JSON file for provenance.heldout_evaluation")
    parser.add_argument("--every", type=int, default=20480, help="steps between training-curve points")
    args = parser.parse_args()
    src = Path(args.policy)
    card = json.loads(src.with_suffix(".json").read_text())
    prov = card["provenance"]
    prov["training_curve"] = training_curve(src.parent / "tb", args.every)
    prov["shipped_as"] = args.shipped_as
    if args.heldout:
        prov["heldout_evaluation"] = json.loads(Path(args.heldout).read_text())
    card["name"] = args.name
    dest = SHIPPED_DIR / args.name
    shutil.copyfile(src.with_suffix(".safetensors"), dest.with_suffix(".safetensors"))
    dest.with_suffix(".json").write_text(json.dumps(card, indent=1, sort_keys=True, allow_nan=False) + "\n")
    digest = hashlib.sha256(dest.with_suffix(".safetensors").read_bytes()).hexdigest()
    print(f"shipped {src} as policy:{args.name} ({dest}.*), weights sha256 {digest}")


if __name__ == "__main__":
    main()
