#!/bin/bash
# Session 30: issue #16's (a), (b), (c) for a policy whose held-out runs are in RUNS (benchmarks/heldout_grid.sh), with
# policy:default-s28 (the default of sessions 25 to 34) beside it: its committed runs (docs/data/s25/, the same weights;
# at MiniLM interval 0.25 its session-28 card's runs, seeds 0 and 1 of docs/data/s28/held/) and the others'
# (docs/data/heldout-s12, minilm-s14). Until session 35 the output called policy:default-s28 policy:default.
#   bash benchmarks/versus_default_pool.sh POLICYSPEC RUNS EXPORT [--json FILE]
set -e
cd "$(dirname "$0")/.."
P=$1; R=$2; X=$3
[ -n "$P" ] && [ -n "$R" ] && [ -n "$X" ] || { echo "usage: versus_default_pool.sh POLICYSPEC RUNS EXPORT [--json FILE]" >&2; exit 2; }
PY=${PYTHON:-.venv/bin/python}
DEFAULT=policy:docs/data/s24/candidate/ppo-residual-select-100352   # policy:default-s28 as its committed runs name it
mkdir -p "$X"
$PY benchmarks/rename_scores.py docs/data/s28/held/minilm-e5-i0.25-all-seeds.json --seeds 0,1 --controller "$DEFAULT" \
  "$X/default-minilm-e5-i0.25.json"
G=()
for g in e4 e4-i0.25 e6 e6-i0.25 e20 e20-i0.25 e30; do
  G+=(--grid "$g=docs/data/heldout-s12/$g.json" --grid "$g=docs/data/s25/grid-$g.json" --grid "$g=$R/grid-$g/evaluation.json"); done
G+=(--grid "minilm-e5=docs/data/minilm-s14/minilm-e5.json" --grid "minilm-e5=docs/data/s25/minilm-e5.json"
    --grid "minilm-e5=$R/minilm-e5/evaluation.json")
G+=(--grid "minilm-e5-i0.25=docs/data/minilm-s14/minilm-e5-i0.25.json" --grid "minilm-e5-i0.25=$X/default-minilm-e5-i0.25.json"
    --grid "minilm-e5-i0.25=$R/minilm-e5-i0.25/evaluation.json")
$PY benchmarks/ppo_heldout.py --policy policy:candidate --rename "$P=policy:candidate" --rename "$DEFAULT=policy:default-s28" \
  --rename policy:runs/h16/fast-s0/ppo-residual-fast=policy:ppo-residual-fast --rename policy:default=policy:ppo-residual-fast \
  --rename policy:PREVIOUS=policy:ppo-residual-long \
  --versus policy:default-s28,policy:ppo-residual-fast,policy:clone,bold,bold+guard,rule "${G[@]}" --export "$X" "${@:4}"
