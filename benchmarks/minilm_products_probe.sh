#!/bin/bash
# Session 26's probe: do the policies that collapsed a held-out MiniLM run at interval 0.25 collapse on minilm-products
# (the same backbone, other words), and do the others not? About 25 minutes on the 2-core CPU.
#   bash benchmarks/minilm_products_probe.sh OUTDIR
set -e
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
O=$1
[ -n "$O" ] || { echo "usage: minilm_products_probe.sh OUTDIR" >&2; exit 2; }
L=${LRPILOT:-.venv/bin/lrpilot}
PYTHONPATH=benchmarks $L evaluate-controller policy:ppo-residual-fast policy:default policy:clone \
  policy:docs/data/s16-candidate/ppo-residual-finetune-keep policy:docs/data/s18/cliff-s0/ppo-residual-cliff \
  policy:docs/data/s19/cont-s2/ppo-residual-cliff \
  --import minilm_products --tasks minilm-products --lrs 1e-5,1e-4 --optimizers adam --seeds 2 --epochs 5 \
  --interval 0.25 --val-subset 128 --baselines rule --lrfree '' --workers 2 --no-progress --out "$O"
