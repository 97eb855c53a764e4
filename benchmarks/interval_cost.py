"""What control intervals cost: a ``digits-cnn`` run deciding every quarter epoch on a quarter of the
validation split, against the same run deciding once per epoch on the whole split.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/interval_cost.py --pairs 5 --epochs 10

Each pair runs the two settings back to back (in alternating order) with the same seed and the
``rule`` controller, each through ``run_training`` into a fresh output folder, exactly as
``lrpilot train --out`` runs: training, a validation per interval, the controller's decision, an
atomic checkpoint and an atomic rewrite of ``metrics.jsonl`` per interval, and the final test
evaluation. Loading the data and building the model are outside the timing (the same for both).
Prints the wall time of each and the median ratio (interval / per-epoch); ``--json`` writes them too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def _timed(config, out: Path) -> float:  # noqa: ANN001
    from lrpilot.experiments.run import run_training

    start = time.perf_counter()
    run_training(config, out)
    return time.perf_counter() - start


def main() -> None:
    import torch

    from lrpilot.experiments.run import RunConfig
    from lrpilot.training import get_task
    from lrpilot.training.loading import load_splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    val = len(load_splits(get_task("digits-cnn"), None).val)
    base = dict(task="digits-cnn", controller="rule", epochs=args.epochs, device="cpu")
    settings = {"per_epoch": RunConfig(**base), "quarter": RunConfig(**base, interval="0.25", val_subset=val // 4)}
    _timed(settings["per_epoch"], Path(tempfile.mkdtemp()))  # warm-up (imports, allocator)
    times: dict[str, list[float]] = {name: [] for name in settings}
    for pair in range(args.pairs):
        order = list(settings) if pair % 2 == 0 else list(reversed(settings))
        for name in order:
            with tempfile.TemporaryDirectory() as tmp:
                times[name].append(_timed(settings[name], Path(tmp)))
    ratios = [q / e for q, e in zip(times["quarter"], times["per_epoch"])]
    result = {"pairs": args.pairs, "epochs": args.epochs, "val_examples": val, "val_subset": val // 4,
              "torch_threads": torch.get_num_threads(), "seconds": times,
              "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"interval 0.25 + val subset {val // 4} / per-epoch: median ratio {result['ratio_median']:.2f} "
          f"(min {result['ratio_min']:.2f}, max {result['ratio_max']:.2f}), n={args.pairs} pairs")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
