"""Validation-set scores (played per epoch and at interval 0.25, as configs/ppo-residual-1m.toml validates).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/validation_references.py               # -> runs/h16/val-refs.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/validation_references.py policy:runs/ctrl/quick/quick.json

Without arguments: the references (the shipped clone, its rule, ``bold`` and ``rule``), written to
runs/h16/val-refs.json. With controller specs: those, printed only (how docs/controller.md scored the quick
recipe's policies). The validation set never shares a task with the held-out grid.
"""
import json
import sys
import time
from pathlib import Path

from lrpilot.controller import from_spec
from lrpilot.learn.validation import ValidationSet

REFERENCES = ("policy:clone", "bold-anneal-streakup", "bold", "rule")

if __name__ == "__main__":
    specs = sys.argv[1:] or REFERENCES
    vs = ValidationSet(intervals=(None, "0.25"))
    out = {}
    for spec in specs:
        start = time.perf_counter()
        r = vs.evaluate(lambda: from_spec(spec))
        out[spec] = {k: r[k] for k in ("mean_regret", "mean_test_acc", "diverged") if k in r}
        print(spec, out[spec], f"{time.perf_counter() - start:.0f} s", flush=True)
    if not sys.argv[1:]:
        Path("runs/h16").mkdir(parents=True, exist_ok=True)
        Path("runs/h16/val-refs.json").write_text(json.dumps(out, indent=1))
