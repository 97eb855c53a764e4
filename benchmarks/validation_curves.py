"""Plot the validation-regret curves that ``lrpilot train-controller`` records in policy cards (issue #16).

    .venv/bin/python benchmarks/validation_curves.py runs/h16/clone-twin/ppo-twin.json \
        runs/h16/scratch-twin/scratch-twin.json --out docs/img/ppo-validation-curves.png

Each card's ``provenance.validation_curve`` (validation regret in points against PPO steps; lower is
better) becomes one line, labelled with the run folder's name (the card's name when it has none); the best checkpoint is
marked. The regret axis is logarithmic when the curves span more than a factor of 4 (runs from scratch), linear
otherwise. Also prints the curves as a Markdown table. ``--offsets`` shifts a card's curve by the PPO steps that came
before its run (a run continued from another's result with ``--init-policy``), so that a continuation plots after its
start.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cards", nargs="+", help="policy cards (NAME.json) with a validation curve")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--labels", help="comma-separated line labels, one per card (default: the run folders' names)")
    parser.add_argument("--title", default="PPO with the twin reward: validation regret (star: exported checkpoint)",
                        help="the figure's title (default says what the star marks)")
    parser.add_argument("--offsets", help="comma-separated PPO steps before each card's run (default: 0 each)")
    args = parser.parse_args()
    labels = args.labels.split(",") if args.labels else [Path(c).parent.name or Path(c).stem for c in args.cards]
    if len(labels) != len(args.cards):
        parser.error(f"--labels names {len(labels)} lines for {len(args.cards)} cards")
    try:
        offsets = [int(o) for o in args.offsets.split(",")] if args.offsets else [0] * len(args.cards)
    except ValueError:
        parser.error(f"--offsets: {args.offsets!r} is not comma-separated whole numbers")
    if len(offsets) != len(args.cards):
        parser.error(f"--offsets gives {len(offsets)} numbers for {len(args.cards)} cards")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    values: list[float] = []
    for path, label, offset in zip(args.cards, labels, offsets):
        card = json.loads(Path(path).read_text())
        curve = card["provenance"]["validation_curve"]
        best = card["provenance"]["validation_best"]
        steps = [offset + e["timesteps"] for e in curve]
        regret = [e["mean_regret"] for e in curve]
        values += regret
        line, = ax.plot(steps, regret, marker="o", label=label)
        ax.plot([offset + best["timesteps"]], [best["mean_regret"]], marker="*", markersize=14, color=line.get_color())
        print(f"| {label} | " + " | ".join(f"{s}: {r:.2f}" for s, r in zip(steps, regret)) + " |")
    ax.set_xlabel("PPO steps (decisions of one member)")
    ax.set_ylabel("validation regret (points; lower is better)")
    if max(values) > 4 * min(values):  # curves from scratch span a decade and read better on a log scale
        ax.set_yscale("log")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
