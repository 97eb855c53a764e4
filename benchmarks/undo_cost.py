"""What undo costs: the snapshot a ``TrainingSession(undo=True)`` takes at the start of every epoch,
the restore of ``session.undo()``, and the measure of how far an interval moved the weights against the snapshot
(``EpochMetrics.weight_change``, once per interval in such a session), for ResNet-18 (CIFAR stem) with Adam on the CPU.

    .venv/bin/python benchmarks/undo_cost.py --repeats 20

The session trains ``cifar10-resnet18`` on generated uint8 images in the task's own format (CIFAR-10
cannot be downloaded here; the model, optimiser and snapshot code are the real ones). One short
epoch first fills Adam's moment buffers, so the snapshot holds what it holds in a real run: the
weights, the buffers (BatchNorm statistics) and the optimiser state. Prints the snapshot's size
and the median (min-max) milliseconds of taking it, of restoring it and of ``weight_change``; with ``--json`` also
writes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def _splits():  # noqa: ANN202 - DataSplits
    from lrpilot.training import get_task
    from lrpilot.training.data import TensorSplit
    from lrpilot.training.vision import cifar_splits

    gen = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorSplit:
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
        return TensorSplit(images, torch.randint(0, 10, (n,), generator=gen))

    return cifar_splits(get_task("cifar10-resnet18"), split(128), split(64), split(64), 10)


def _megabytes(state: object) -> float:
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size() / 2**20
    if isinstance(state, dict):
        return sum(_megabytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_megabytes(v) for v in state)
    return 0.0


def main() -> None:
    from lrpilot.metrics import weight_change
    from lrpilot.training import TrainingSession

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    session = TrainingSession("cifar10-resnet18", seed=0, device="cpu", data=_splits(), undo=True,
                              epoch_examples=128)
    session.run_epoch()  # Adam's state exists from here on
    snapshot = session._take_snapshot()
    sizes = {"weights_and_buffers_mb": _megabytes(snapshot["model"]), "optimizer_mb": _megabytes(snapshot["optimizer"])}
    take, restore, moved = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        session._snapshots = [session._take_snapshot()]
        take.append(1e3 * (time.perf_counter() - start))
        start = time.perf_counter()
        weight_change(session.model, session._snapshots[-1]["model"])
        moved.append(1e3 * (time.perf_counter() - start))
        start = time.perf_counter()
        session.undo(lr_factor=1.0)
        restore.append(1e3 * (time.perf_counter() - start))
    result = {**{k: round(v, 1) for k, v in sizes.items()}, "repeats": args.repeats,
              "torch_threads": torch.get_num_threads(),
              "snapshot_ms": {"median": statistics.median(take), "min": min(take), "max": max(take)},
              "restore_ms": {"median": statistics.median(restore), "min": min(restore), "max": max(restore)},
              "weight_change_ms": {"median": statistics.median(moved), "min": min(moved), "max": max(moved)}}
    print(f"ResNet-18 + Adam snapshot: {sizes['weights_and_buffers_mb']:.1f} MB weights and buffers + "
          f"{sizes['optimizer_mb']:.1f} MB optimiser state")
    for key in ("snapshot_ms", "restore_ms", "weight_change_ms"):
        r = result[key]
        print(f"{key}: median {r['median']:.1f} ms (min {r['min']:.1f}, max {r['max']:.1f}), n={args.repeats}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
