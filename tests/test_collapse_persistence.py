"""benchmarks/collapse_persistence.py: a collapse counts only after the model discriminated, and how long it lasts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture()
def module(benchmark_module):
    return benchmark_module("collapse_persistence")


def write_run(path: Path, shares: list[float], undone: tuple[int, ...] = ()) -> Path:
    path.mkdir(parents=True)
    lines = [{"epoch": i + 1, "val_top_share": s, "undone": i in undone} for i, s in enumerate(shares)]
    lines.append({"final": {"test_acc": 0.5, "config": {"controller": "policy:default", "lr": 1e-5, "seed": 0}}})
    (path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path / "metrics.jsonl"


def test_a_fresh_head_predicting_one_class_is_not_a_collapse(module, tmp_path):
    row = module.run_rows(write_run(tmp_path / "a", [1.0, 1.0, 0.6, 0.5, 0.4]), share=0.95)
    assert row["collapsed"] == 2 and row["first"] is None and row["after_first"] is None


def test_a_collapse_after_learning_and_its_persistence(module, tmp_path):
    row = module.run_rows(write_run(tmp_path / "b", [1.0, 0.6, 0.99, 1.0, 0.5, 1.0]), share=0.95)
    assert row["first"] == 3  # the third validation, the first collapsed one after a discriminating one
    assert row["after_first"] == pytest.approx(2 / 3, abs=1e-3)  # two of the three after it collapsed too (rounded)


def test_undone_intervals_are_left_out(module, tmp_path):
    row = module.run_rows(write_run(tmp_path / "c", [0.6, 1.0, 0.5, 0.5], undone=(1,)), share=0.95)
    assert row["validations"] == 3 and row["first"] is None
