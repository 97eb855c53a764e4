"""Ship a shipped policy's weights under another name, its card given ``raise_power`` (session 27).

    .venv/bin/python benchmarks/ship_raise_power.py default --as finetune --raise-power 1 \
        --heldout docs/data/s27/finetune-heldout.json --shipped-as "policy:finetune since ..."   # how finetune shipped
    .venv/bin/python benchmarks/ship_raise_power.py default --as default-s25 --keep-heldout --shipped-as "..."
    .venv/bin/python benchmarks/ship_raise_power.py default --as default --raise-power-pretrained 1 \
        --heldout docs/data/s28/default-heldout.json --shipped-as "..."                         # session 28

The weights are copied byte for byte; the card is the source's with ``name``, ``raise_power`` (removed with
``--raise-power 0``), ``raise_power_pretrained`` (likewise, session 28), ``provenance.shipped_as``,
``provenance.weights_of`` (the source's name and its weights' sha256; not when a card is rewritten in place) and, with
``--heldout``, ``provenance.heldout_evaluation`` (else the source's is dropped, since it measured another card, unless
``--keep-heldout`` says the card acts as the source's). The policy is loaded back before the script ends.
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
    parser.add_argument("--raise-power-pretrained", type=float, default=None)
    parser.add_argument("--keep-heldout", action="store_true", help="keep the source's heldout_evaluation")
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
    card.pop("raise_power_pretrained", None)
    if args.raise_power_pretrained is not None:
        card["raise_power_pretrained"] = args.raise_power_pretrained
    prov = card["provenance"]
    prov["shipped_as"] = args.shipped_as
    if src != dest:
        prov["weights_of"] = {"policy": args.source, "sha256": hashlib.sha256(weights).hexdigest()}
    if not args.keep_heldout:
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
    print(f"shipped policy:{args.source}'s weights as policy:{args.name} (raise_power {policy.raise_power:g}, on "
          f"pretrained models {policy.raise_power_pretrained:g}), weights sha256 {hashlib.sha256(weights).hexdigest()}")


if __name__ == "__main__":
    main()
