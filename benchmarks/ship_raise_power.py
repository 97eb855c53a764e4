"""Ship a shipped policy's weights under another name, its card given ``raise_power`` (session 27).

    .venv/bin/python benchmarks/ship_raise_power.py default --as finetune --raise-power 1 \
        --heldout docs/data/s27/finetune-heldout.json --shipped-as "policy:finetune since ..."   # how finetune shipped

The weights are copied byte for byte; the card is the source's with ``name``, ``raise_power`` (removed with
``--raise-power 0``), ``provenance.shipped_as``, ``provenance.weights_of`` (the source's name and its weights'
sha256) and, with ``--heldout``, ``provenance.heldout_evaluation`` (else the source's is dropped: it measured
another card). The policy is loaded back before the script ends.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil

from lrpilot.controller.policy import SHIPPED_DIR, load_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a shipped policy's name (lrpilot/checkpoints/NAME.*)")
    parser.add_argument("--as", dest="name", required=True)
    parser.add_argument("--raise-power", type=float, default=0.0)
    parser.add_argument("--shipped-as", required=True, help="one sentence for provenance.shipped_as")
    parser.add_argument("--heldout", help="a JSON file for provenance.heldout_evaluation")
    args = parser.parse_args()
    src, dest = SHIPPED_DIR / args.source, SHIPPED_DIR / args.name
    card = json.loads(src.with_suffix(".json").read_text())
    weights = src.with_suffix(".safetensors").read_bytes()
    card["name"] = args.name
    card.pop("raise_power", None)
    if args.raise_power:
        card["raise_power"] = args.raise_power
    prov = card["provenance"]
    prov["shipped_as"] = args.shipped_as
    prov["weights_of"] = {"policy": args.source, "sha256": hashlib.sha256(weights).hexdigest()}
    prov.pop("heldout_evaluation", None)
    if args.heldout:
        with open(args.heldout) as f:
            prov["heldout_evaluation"] = json.load(f)
    if src != dest:
        shutil.copyfile(src.with_suffix(".safetensors"), dest.with_suffix(".safetensors"))
    dest.with_suffix(".json").write_text(json.dumps(card, indent=1, sort_keys=True, allow_nan=False) + "\n")
    for path in (dest.with_suffix(".json"), dest.with_suffix(".safetensors")):
        path.chmod(0o644)
    policy = load_policy(args.name)
    print(f"shipped policy:{args.source}'s weights as policy:{args.name} (raise_power {policy.raise_power:g}), "
          f"weights sha256 {prov['weights_of']['sha256']}")


if __name__ == "__main__":
    main()
