"""benchmarks/gpu_checks.py, the GPU run's other steps, on a CPU: its CIFAR data is what ``--data-dir`` reads, and a
study's runs per hour count only the runs that finished."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import tests.fixtures  # noqa: F401 - offline hub settings
from lrpilot.training import get_task
from lrpilot.training.vision import load_cifar10

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_checks.py"


def _checks():
    spec = importlib.util.spec_from_file_location("gpu_checks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_cifar_is_read_by_the_task_as_the_hub_copy_would_be(tmp_path: Path) -> None:
    done = _checks().main(["cifar-data", str(tmp_path / "cifar"), "--train", "96", "--test", "32",
                           "--json", str(tmp_path / "data.json")])
    assert json.loads((tmp_path / "data.json").read_text())["train"] == 96 == done["train"]
    task = get_task("cifar10-resnet18").with_overrides(val_size=16)
    data = load_cifar10(task, str(tmp_path / "cifar"))
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (80, 16, 32, 10)
    x, y = data.train.inputs, data.train.labels
    assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.uint8 and int(y.max()) <= 9
    # each class is noise around its own colour, so the classes differ on average (a learnable task)
    means = [x[y == k].float().mean((0, 2, 3)) for k in y.unique()]
    assert max(float((a - b).abs().max()) for a in means for b in means) > 20


def test_runs_per_hour_counts_finished_runs_only(tmp_path: Path) -> None:
    study = tmp_path / "study" / "runs"
    final = {"final": {"test_acc": 0.5, "wall_time": 3.0}}
    for name, records in (("a", [{"epoch": 1}, final]), ("b", [{"epoch": 1}, final]), ("c", [{"epoch": 1}])):
        (study / name).mkdir(parents=True)
        (study / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    got = _checks().runs_per_hour(str(tmp_path / "study"), seconds=72.0)
    assert got["finished"] == 2 and [r["run"] for r in got["runs"]] == ["a", "b"]
    assert got["runs_per_hour"] == pytest.approx(100.0)
