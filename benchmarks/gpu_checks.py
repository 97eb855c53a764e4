"""The GPU checks of issue #17 that are not throughput: CIFAR-format data, one environment episode, runs per hour.

Three sub-commands, each writing JSON, called by ``benchmarks/gpu_session.sh`` (which also runs
``throughput.py`` and the CUDA-only test) and rehearsed on a CPU with small sizes:

    python benchmarks/gpu_checks.py cifar-data DIR --train 50000 --test 10000
        CIFAR-10 in the format ``datasets.load_dataset("uoft-cs/cifar10")`` gives (``img`` PIL images,
        ``label`` ClassLabel; splits train/test), written with ``save_to_disk``: what ``--data-dir``
        reads: the test suite's generator, noise around a colour per class (learnable, so the runs are not flat).
    python benchmarks/gpu_checks.py env-episode --data-dir DIR --device cuda --epochs 2 --json F
        One ``lrpilot/LRControl-v0`` episode of ``cifar10-resnet18`` on the device: the seconds of
        each step (the first one compiles), the observations finite, the LR each action set.
    python benchmarks/gpu_checks.py runs-per-hour STUDY_DIR --seconds S --json F
        Runs a ``lrpilot compare`` study finished, and per hour, given its wall seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.fixtures


def cifar_data(path: str, n_train: int, n_test: int, seed: int = 0) -> dict[str, Any]:
    """Write a CIFAR-10-format ``DatasetDict`` of ``n_train`` + ``n_test`` images to ``path`` (the test suite's
    generator, :func:`tests.fixtures.make_cifar_dir`)."""
    from tests.fixtures import make_cifar_dir

    began = time.perf_counter()
    make_cifar_dir(path, n_train, n_test, seed=seed)
    return {"dir": path, "train": n_train, "test": n_test, "seconds": round(time.perf_counter() - began, 1)}


def env_episode(data_dir: str, device: str, epochs: int, interval: float | None = None,
                val_size: int | None = None) -> dict[str, Any]:
    """One episode of ``cifar10-resnet18`` in ``lrpilot/LRControl-v0`` on ``device``: keep, halve, keep..."""
    import gymnasium as gym
    import torch

    import lrpilot.envs  # noqa: F401 - registers the ids

    env = gym.make("lrpilot/LRControl-v0", task="cifar10-resnet18", data_dir=data_dir, device=device,
                   epochs=epochs, initial_lr=1e-3, interval=interval,
                   task_options={"val_size": val_size} if val_size else {})
    began = time.perf_counter()
    obs, info = env.reset(seed=0)
    steps: list[dict[str, Any]] = [{"step": 0, "seconds": round(time.perf_counter() - began, 2)}]
    keep = 2  # actions "0.1,0.5,1,2": index 2 keeps the LR, 1 halves it
    done, t = False, 0
    while not done:
        t += 1
        tick = time.perf_counter()
        obs, reward, terminated, truncated, info = env.step(keep if t % 2 else 1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        steps.append({"step": t, "seconds": round(time.perf_counter() - tick, 2), "reward": float(reward),
                      "lr": float(info.get("lr", math.nan)),
                      "val_acc": info["metrics"].get("val_acc"), "diverged": bool(info.get("diverged")),
                      "obs_finite": bool(np.isfinite(obs).all())})
        done = terminated or truncated
    session = env.unwrapped.session
    env.close()
    return {"task": "cifar10-resnet18", "device": str(session.device), "compiled": bool(session.compiled),
            "epochs": epochs, "interval": interval, "steps": steps, "all_finite": all(s.get("obs_finite", True)
                                                                                       for s in steps),
            "seconds": round(time.perf_counter() - began, 1),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def runs_per_hour(study_dir: str, seconds: float) -> dict[str, Any]:
    """How many runs of a ``compare`` study have a final record, and that count per hour of ``seconds``."""
    finished = []
    for metrics in sorted(Path(study_dir).glob("runs/*/metrics.jsonl")):
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        final = records[-1].get("final") if records else None
        if final:
            finished.append({"run": metrics.parent.name, "wall_time": final.get("wall_time")})
    return {"study": study_dir, "finished": len(finished), "seconds": seconds,
            "runs_per_hour": len(finished) * 3600 / seconds if seconds > 0 else None, "runs": finished}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the sub-command, run it, print and (with ``--json``) write its result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("cifar-data")
    data.add_argument("dir")
    data.add_argument("--train", type=int, default=50_000)
    data.add_argument("--test", type=int, default=10_000)
    episode = sub.add_parser("env-episode")
    episode.add_argument("--data-dir", required=True)
    episode.add_argument("--device", default="cuda")
    episode.add_argument("--epochs", type=int, default=2)
    episode.add_argument("--interval", type=float, default=None)
    episode.add_argument("--val-size", type=int, default=None, help="validation images (default: the task's 5,000)")
    rate = sub.add_parser("runs-per-hour")
    rate.add_argument("study_dir")
    rate.add_argument("--seconds", type=float, required=True)
    for p in (data, episode, rate):
        p.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.command == "cifar-data":
        result = cifar_data(args.dir, args.train, args.test)
    elif args.command == "env-episode":
        result = env_episode(args.data_dir, args.device, args.epochs, args.interval, args.val_size)
    else:
        result = runs_per_hour(args.study_dir, args.seconds)
    result["python"] = platform.python_version()
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
