"""Validation-set scores of the references (played per epoch and at interval 0.25, as
configs/ppo-residual-1m.toml validates): the shipped clone, its rule, ``bold`` and ``rule``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/validation_references.py     # -> runs/h16/val-refs.json
"""
import json
from pathlib import Path
from lrpilot.controller import from_spec
from lrpilot.learn.validation import ValidationSet

if __name__ == "__main__":
    vs = ValidationSet(intervals=(None, "0.25"))
    out = {}
    for spec in ("policy:clone", "bold-anneal-streakup", "bold", "rule"):
        r = vs.evaluate(lambda: from_spec(spec))
        out[spec] = {k: r[k] for k in ("mean_regret", "mean_test_acc", "diverged") if k in r}
        print(spec, out[spec], flush=True)
    Path("runs/h16").mkdir(parents=True, exist_ok=True)
    Path("runs/h16/val-refs.json").write_text(json.dumps(out, indent=1))
