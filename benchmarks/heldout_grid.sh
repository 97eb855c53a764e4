#!/bin/bash
# Issue #16's held-out grid for one policy: 4 real tasks x LR 1e-5..1e-2 x 3 seeds, Adam, 4/6/20/30 epochs (4/6/20 also
# at --interval 0.25), and minilm-sentiment (5 epochs, 2 seeds, per epoch and at 0.25 with --val-subset 128).
# About 19 minutes on the 2-core CPU with nothing else running.
#   bash benchmarks/heldout_grid.sh POLICYSPEC OUTDIR
# then pool with the committed runs of the other controllers: bash benchmarks/heldout_pool.sh POLICYSPEC OUTDIR
set -e
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
P=$1; O=$2
[ -n "$P" ] && [ -n "$O" ] || { echo "usage: heldout_grid.sh POLICYSPEC OUTDIR" >&2; exit 2; }
L=${LRPILOT:-.venv/bin/lrpilot}
T=digits-mlp,digits-cnn,breast-cancer-mlp,wine-mlp
C=(--lrs 1e-5,1e-4,1e-3,1e-2 --optimizers adam --baselines '' --lrfree '' --workers 2 --no-progress)
for e in 4 6 20 30; do
  $L evaluate-controller "$P" --tasks $T --seeds 3 --epochs $e "${C[@]}" --out "$O/grid-e$e"
  if [ $e != 30 ]; then
    $L evaluate-controller "$P" --tasks $T --seeds 3 --epochs $e --interval 0.25 "${C[@]}" --out "$O/grid-e$e-i0.25"
  fi
done
M=(--import minilm_sentiment --tasks minilm-sentiment --seeds 2 --epochs 5)
PYTHONPATH=benchmarks $L evaluate-controller "$P" "${M[@]}" "${C[@]}" --out "$O/minilm-e5"
PYTHONPATH=benchmarks $L evaluate-controller "$P" "${M[@]}" --interval 0.25 --val-subset 128 "${C[@]}" --out "$O/minilm-e5-i0.25"
