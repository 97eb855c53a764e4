#!/bin/bash
# Session 27: the held-out runs of a policy that differs from policy:default only below an epoch (a card raise_power):
# the four small tasks at --interval 0.25 with 4, 6 and 20 epochs (3 seeds), minilm-sentiment at 0.25 (LR 1e-4 on
# seeds 0-5; 1e-5, 1e-3, 1e-2 on seeds 0-1), and a per-epoch check (wine, breast cancer, 4 epochs) whose runs must equal
# the default's in docs/data/s25/grid-e4.json. About 15 minutes on the 2-core CPU. Then benchmarks/raise_power_pool.sh.
#   bash benchmarks/raise_power_grid.sh POLICYSPEC OUTDIR
set -e
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
P=$1; O=$2
[ -n "$P" ] && [ -n "$O" ] || { echo "usage: raise_power_grid.sh POLICYSPEC OUTDIR" >&2; exit 2; }
L=${LRPILOT:-.venv/bin/lrpilot}
T=digits-mlp,digits-cnn,breast-cancer-mlp,wine-mlp
C=(--lrs 1e-5,1e-4,1e-3,1e-2 --optimizers adam --baselines '' --lrfree '' --workers 2 --no-progress)
for e in 4 6 20; do
  $L evaluate-controller "$P" --tasks $T --seeds 3 --epochs $e --interval 0.25 "${C[@]}" --out "$O/grid-e$e-i0.25"
done
M=(--import minilm_sentiment --tasks minilm-sentiment --epochs 5 --interval 0.25 --val-subset 128 --optimizers adam
   --baselines '' --lrfree '' --workers 2 --no-progress)
PYTHONPATH=benchmarks $L evaluate-controller "$P" "${M[@]}" --lrs 1e-4 --seeds 6 --out "$O/minilm-1e-4-six"
PYTHONPATH=benchmarks $L evaluate-controller "$P" "${M[@]}" --lrs 1e-5,1e-3,1e-2 --seeds 2 --out "$O/minilm-e5-i0.25-rest"
$L evaluate-controller "$P" --tasks wine-mlp,breast-cancer-mlp --seeds 3 --epochs 4 "${C[@]}" --out "$O/check-e4"
