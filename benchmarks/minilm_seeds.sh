#!/bin/bash
# MiniLM cells of issue #16's (c) with more seeds than the issue's grid: minilm-sentiment, Adam, 5 epochs, LR 1e-4 and
# 1e-2, per epoch and at --interval 0.25 --val-subset 128, seeds 0..N-1 (default 6), for the given policies and `rule`.
# Seeds 0 and 1 are the issue's grid (heldout_grid.sh) again. Then: benchmarks/minilm_seeds.py OUTDIR.
#   bash benchmarks/minilm_seeds.sh OUTDIR [SEEDS] [POLICYSPEC ...]   (default policies: policy:default policy:ppo-residual-fast)
set -e
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
O=$1; S=${2:-6}
[ -n "$O" ] || { echo "usage: minilm_seeds.sh OUTDIR [SEEDS] [POLICYSPEC ...]" >&2; exit 2; }
shift; shift || true
P=("$@"); [ ${#P[@]} -gt 0 ] || P=(policy:default policy:ppo-residual-fast)
L=${LRPILOT:-.venv/bin/lrpilot}
M=(--import minilm_sentiment --tasks minilm-sentiment --lrs 1e-4,1e-2 --optimizers adam --seeds "$S" --epochs 5
   --baselines rule --lrfree '' --workers 2 --no-progress)
PYTHONPATH=benchmarks $L evaluate-controller "${P[@]}" "${M[@]}" --out "$O/minilm-e5"
PYTHONPATH=benchmarks $L evaluate-controller "${P[@]}" "${M[@]}" --interval 0.25 --val-subset 128 --out "$O/minilm-e5-i0.25"
