#!/bin/bash
# Session 27: issue #16's (a), (b), (c) for a candidate that is policy:default's weights with a card raise_power.
# Its per-epoch cells are the default's committed runs under its name (raise_power changes nothing at one decision per
# epoch: tests/test_raise_power.py, and RUNS/check-e4 against docs/data/s25/grid-e4.json); its interval-0.25 cells are
# RUNS/grid-e{4,6,20}-i0.25 and, for MiniLM, seeds 0-1 of RUNS/minilm-1e-4-six and RUNS/minilm-e5-i0.25-rest
# (benchmarks/raise_power_grid.sh), or the same runs' scores as committed in docs/data/s27/p05 and docs/data/s27/finetune.
#   bash benchmarks/raise_power_pool.sh POLICYSPEC RUNS EXPORT [--json FILE]
set -e
cd "$(dirname "$0")/.."
P=$1; R=$2; X=$3
[ -n "$P" ] && [ -n "$R" ] && [ -n "$X" ] || { echo "usage: raise_power_pool.sh POLICYSPEC RUNS EXPORT [--json FILE]" >&2; exit 2; }
PY=${PYTHON:-.venv/bin/python}
DEFAULT=policy:docs/data/s24/candidate/ppo-residual-select-100352   # policy:default as its committed runs name it
for g in grid-e4 grid-e6 grid-e20 grid-e30 minilm-e5; do
  $PY benchmarks/rename_scores.py docs/data/s25/$g.json --controller "$P" "$X/$g.json"; done
if [ -f "$R/minilm-e5-i0.25-all-seeds.json" ]; then MINILM=("$R/minilm-e5-i0.25-all-seeds.json")  # committed: docs/data/s27/NAME
else MINILM=("$R/minilm-1e-4-six" "$R/minilm-e5-i0.25-rest"); fi
$PY benchmarks/rename_scores.py "${MINILM[@]}" --seeds 0,1 "$X/minilm-e5-i0.25.json"
G=()
for g in e4 e6 e20 e30; do
  G+=(--grid "$g=docs/data/heldout-s12/$g.json" --grid "$g=docs/data/s25/grid-$g.json" --grid "$g=$X/grid-$g.json"); done
for g in e4 e6 e20; do
  S="$R/grid-$g-i0.25.json"; [ -f "$S" ] || S="$R/grid-$g-i0.25/evaluation.json"
  G+=(--grid "$g-i0.25=docs/data/heldout-s12/$g-i0.25.json" --grid "$g-i0.25=docs/data/s25/grid-$g-i0.25.json"
      --grid "$g-i0.25=$S"); done
for g in minilm-e5 minilm-e5-i0.25; do
  G+=(--grid "$g=docs/data/minilm-s14/$g.json" --grid "$g=docs/data/s25/$g.json" --grid "$g=$X/$g.json"); done
$PY benchmarks/ppo_heldout.py --policy policy:candidate --rename "$P=policy:candidate" --rename "$DEFAULT=policy:default" \
  --rename policy:runs/h16/fast-s0/ppo-residual-fast=policy:ppo-residual-fast --rename policy:default=policy:ppo-residual-fast \
  --rename policy:PREVIOUS=policy:ppo-residual-long \
  --versus policy:default,policy:ppo-residual-fast,policy:clone,bold,bold+guard,rule "${G[@]}" "${@:4}"
