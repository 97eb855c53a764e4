#!/bin/bash
# Pool one policy's held-out runs (benchmarks/heldout_grid.sh) with the committed runs of the others
# (docs/data/heldout-s12/, docs/data/minilm-s14/) and print issue #16's (a), (b), (c).
#   bash benchmarks/heldout_pool.sh POLICYSPEC OUTDIR [--json FILE]
# The committed runs name the default of 2026-12-03 (policy:ppo-residual-fast since 2026-12-05) policy:default or by
# its run path; both are renamed. Pooling a policy run as policy:default after 2026-12-05 needs another spec for it.
set -e
cd "$(dirname "$0")/.."
P=$1; O=$2; G=()
for g in e4 e4-i0.25 e6 e6-i0.25 e20 e20-i0.25 e30; do
  G+=(--grid "$g=docs/data/heldout-s12/$g.json" --grid "$g=$O/grid-$g/evaluation.json"); done
for g in minilm-e5 minilm-e5-i0.25; do
  G+=(--grid "$g=docs/data/minilm-s14/$g.json" --grid "$g=$O/$g/evaluation.json"); done
${PYTHON:-.venv/bin/python} benchmarks/ppo_heldout.py --policy policy:candidate --rename "$P=policy:candidate" \
  --rename policy:runs/h16/fast-s0/ppo-residual-fast=policy:ppo-residual-fast --rename policy:default=policy:ppo-residual-fast \
  --rename policy:PREVIOUS=policy:ppo-residual-long \
  --versus policy:ppo-residual-fast,policy:clone,bold,bold+guard,rule "${G[@]}" "${@:3}"
