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

A staged command's card (``provenance.stages``, what ``lrpilot train-controller configs/default.toml`` writes) takes
each stage's curve from that stage's run folder (beside the stage's ``policy``), one after the other, and each stage's
entry gains its own run's ``validation_curve`` and ``validation_best`` where it validated.

``--checkpoint STEPS`` ships one of the run's validated checkpoints (``validated/NAME-STEPS.*``) instead of what the
run exported: the card is the run's (recipe, validation curve, speed), its ``validation_best`` stays the run's own
pick, and ``provenance.shipped_checkpoint`` records the shipped one's validation entry. ``--start OLD=NEW`` records
that the run's starting policy (``init_policy``) and twin, named ``OLD`` when it trained, ship as ``policy:NEW`` now
(``provenance.start``, with the weights' sha256), so that the recipe file can name them as they are called today.

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


RETURN_CURVE = ("SB3's rollout/ep_rew_mean: the mean episode return against the twin (the agent's final validation "
                "log-loss improvement minus the twin's) over the last 100 finished episodes")


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
    return {"what": f"{RETURN_CURVE}, read from the run's TensorBoard log ({tb_dir}), at the first rollout and then "
                    f"every {every:,} steps",
            "points": [{"mean_return_vs_twin": round(points[s], 4), "timesteps": s} for s in kept]}


def staged_curves(stages: list[dict], every: int) -> dict:
    """One training curve over a staged command's stages (each point names its stage; steps count within it), and
    each stage's validation curve and pick copied from its own card into its ``stages`` entry."""
    points, where = [], []
    for stage in stages:
        run = Path(stage["policy"])
        curve = training_curve(run.parent / "tb", every)
        points += [{**point, "stage": stage["name"]} for point in curve["points"]]
        where.append(f"{stage['name']}: {run.parent / 'tb'}")
        own = json.loads(run.with_suffix(".json").read_text())["provenance"]
        stage.update({key: own[key] for key in ("validation_curve", "validation_best") if key in own})
    return {"what": f"{RETURN_CURVE}, read from each stage's TensorBoard log ({'; '.join(where)}), at its first rollout "
                    f"and then every {every:,} steps; timesteps count within the stage",
            "points": points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="the trained policy's path without suffix (PATH.json, PATH.safetensors)")
    parser.add_argument("--as", dest="name", required=True, help="the name to ship it under (policy:NAME)")
    parser.add_argument("--shipped-as", required=True, help="one sentence for provenance.shipped_as")
    parser.add_argument("--heldout", help="a JSON file for provenance.heldout_evaluation")
    parser.add_argument("--every", type=int, default=20480, help="steps between training-curve points")
    parser.add_argument("--checkpoint", type=int, help="ship the run's validated checkpoint at this many steps")
    parser.add_argument("--start", metavar="OLD=NEW", help="the run's start, named OLD then, ships as policy:NEW")
    args = parser.parse_args()
    src = Path(args.policy)
    card = json.loads(src.with_suffix(".json").read_text())
    prov = card["provenance"]
    weights = src.with_suffix(".safetensors")
    if args.checkpoint is not None:
        entry = [e for e in prov["validation_curve"] if e["timesteps"] == args.checkpoint]
        weights = src.parent / "validated" / f"{src.name}-{args.checkpoint}.safetensors"
        if not entry or not weights.exists():
            raise SystemExit(f"no validated checkpoint at {args.checkpoint} steps in {src.parent}")
        saved = json.loads(weights.with_suffix(".json").read_text())
        if {k: saved[k] for k in ("architecture", "encoder", "normalization", "action", "base")} != \
                {k: card[k] for k in ("architecture", "encoder", "normalization", "action", "base")}:
            raise SystemExit(f"{weights} is not a checkpoint of {src}")
        prov["shipped_checkpoint"] = entry[0]
    if args.start:
        old, new = args.start.split("=", 1)
        if prov["recipe"].get("init_policy") != old:
            raise SystemExit(f"the run started from {prov['recipe'].get('init_policy')!r}, not {old!r}")
        start = SHIPPED_DIR / f"{new}.safetensors"
        prov["start"] = {"named_when_trained": old, "ships_as": f"policy:{new}",
                         "sha256": hashlib.sha256(start.read_bytes()).hexdigest()}
    if "stages" in prov:  # a staged command's card (configs/default.toml): every stage's curves, from its own run
        prov["training_curve"] = staged_curves(prov["stages"], args.every)
    else:
        prov["training_curve"] = training_curve(src.parent / "tb", args.every)
    prov["shipped_as"] = args.shipped_as
    if args.heldout:
        prov["heldout_evaluation"] = json.loads(Path(args.heldout).read_text())
    card["name"] = args.name
    dest = SHIPPED_DIR / args.name
    shutil.copyfile(weights, dest.with_suffix(".safetensors"))
    dest.with_suffix(".json").write_text(json.dumps(card, indent=1, sort_keys=True, allow_nan=False) + "\n")
    digest = hashlib.sha256(dest.with_suffix(".safetensors").read_bytes()).hexdigest()
    print(f"shipped {src} as policy:{args.name} ({dest}.*), weights sha256 {digest}")


if __name__ == "__main__":
    main()
