"""benchmarks/throughput.py: small mode writes every row with positive finite numbers; full sizes refused on a CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
NUMBERS = ("items_per_s", "s_per_epoch", "best_s_per_epoch", "ratio", "ratio_best", "epoch_tflop", "flop_bound_s",
           "x_bound")


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.mark.slow
def test_small_mode_writes_every_row_with_positive_finite_numbers(tmp_path):
    out = tmp_path / "small.json"
    done = _run("--small", "--device", "cpu", "--repeats", "1", "--warmup", "0", "--json", str(out), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {(r["task"], r["path"]): r for r in result["rows"]}
    assert set(rows) == {(t, p) for t in ("cifar10-resnet18", "imdb-bert") for p in ("lrpilot", "reference")}
    for key, row in rows.items():
        for name in NUMBERS:
            assert isinstance(row[name], float) and math.isfinite(row[name]) and row[name] > 0, (key, name, row[name])
        assert len(row["epochs_s"]) == 1
        assert row["x_bound"] == pytest.approx(row["s_per_epoch"] / row["flop_bound_s"])
    assert rows["imdb-bert", "reference"]["ratio"] == 1.0
    meta = result["meta"]
    assert meta["mode"] == "small" and meta["device"] == "cpu" and meta["matmul_tflops"] > 0
    assert "| cifar10-resnet18 | lrpilot |" in done.stdout  # the printed table


@pytest.mark.slow
def test_count_only_counts_full_size_work_on_a_cpu(tmp_path):
    out = tmp_path / "count.json"
    done = _run("--full", "--count-only", "--device", "cpu", "--json", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert "rows" not in result  # nothing was timed
    cifar, imdb = result["work"]["cifar10-resnet18"], result["work"]["imdb-bert"]
    assert 212 < cifar["step_gflop"] < 214  # ResNet-18, CIFAR stem: 3 x 1.11 GFLOP per image x 64
    assert 150 < cifar["epoch_tflop"] < 160
    assert 0 < imdb["epoch_tflop"] < imdb["padded_epoch_tflop"]
    tokens = imdb["tokens_per_real_token"]
    assert 1.0 <= tokens["grouped batches, trimmed"] < tokens["random batches, trimmed"] <= tokens["padded"]


def test_full_sizes_are_refused_on_a_cpu_without_force():
    done = _run("--full", "--device", "cpu", timeout=120)
    assert done.returncode == 2
    assert "hours" in done.stderr and "--force" in done.stderr


def test_bad_arguments_name_the_value():
    done = _run("--small", "--device", "cpu", "--repeats", "0", timeout=120)
    assert done.returncode == 2 and "--repeats must be >= 1, got 0" in done.stderr
