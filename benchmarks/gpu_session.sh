#!/usr/bin/env bash
# Issue #17's GPU measurements in one prepared run (docs/performance.md, "GPU"). On the device machine:
#
#   OUT=$OUT bash benchmarks/gpu_session.sh            # full sizes; wheels from .whl/ when present
#   SMALL=1 OUT=/tmp/gpu bash benchmarks/gpu_session.sh  # the CPU rehearsal: CI sizes, same steps
#
# Steps, most wanted first, each in its own process under its own time limit, each writing its
# JSON into OUT as soon as it ends (a step that fails or runs out of time leaves the others):
#   1. the machine and package versions (machine.json), and the CUDA-only test the CPU suite skips;
#   2. benchmarks/throughput.py (throughput.json): CIFAR ResNet-18 and BERT-base, lrpilot against
#      the plain loops, compile on and off, and the matmul rate that gives the FLOP bound;
#   3. CIFAR-10 in the datasets format (generated in the background from the start, one core of
#      many), then one LRControlEnv episode on it: 2 epochs at 2 decisions each (env.json);
#   4. `lrpilot compare --runs-per-gpu 4` (4 runs), then `--runs-per-gpu 1` (2 runs), 2 epochs each
#      (compare-rpgN.json): runs per hour.
# Everything printed goes to OUT/log.txt as well.
set -u -o pipefail
OUT=${OUT:?set OUT to the folder for the results}
SMALL=${SMALL:-0}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
BEGAN=$(date +%s)
say() { echo "[$(( $(date +%s) - BEGAN ))s] $*"; }
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1 \
       TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg

WHEELS=${WHEELS:-.whl}  # the device machine lacks datasets, gymnasium, SB3 and the LR-free optimisers
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    wheels=$(ls $WHEELS/*.whl | grep -v pyarrow)
    if ! $PY -c "import sys, pyarrow; sys.exit(int(pyarrow.__version__.split('.')[0]) < 24)" 2>/dev/null; then
        wheels="$wheels $(ls $WHEELS/pyarrow-*.whl 2>/dev/null)"  # datasets needs pyarrow >= 24
    fi
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels \
        || { say "wheel install failed"; exit 3; }
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
say "installed"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null
$PY - "$OUT/machine.json" <<'PYEOF'
import json, os, platform, sys
from importlib import metadata
import torch
names = ["torch", "torchvision", "transformers", "datasets", "pyarrow", "gymnasium", "stable-baselines3", "numpy"]
info = {"python": platform.python_version(), "cpus": os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "versions": {n: metadata.version(n) for n in names}}
print(info)
open(sys.argv[1], "w").write(json.dumps(info, indent=2) + "\n")
PYEOF

if [ "$SMALL" = 1 ]; then
    T=(--small --repeats 1); IMAGES=(--train 512 --test 128); DEVICE=cpu; EPOCHS=1; OPTION=(--option val_size=128); VAL=(--val-size 128)
else
    T=(--full); IMAGES=(--train 50000 --test 10000); DEVICE=cuda; EPOCHS=2; OPTION=(); VAL=()
fi

DATA=/tmp/cifar10-generated  # written beside steps 1-2 (one CPU core of many, while ResNet-18 compiles)
rm -rf "$DATA" /tmp/rpg1 /tmp/rpg4  # a rerun on a warm machine starts afresh too
timeout 240 $PY benchmarks/gpu_checks.py cifar-data "$DATA" "${IMAGES[@]}" > "$OUT/cifar-data.log" 2>&1 &
DATA_PID=$!

say "1. the CUDA-only test"
timeout 120 $PY -m pytest -q -p no:cacheprovider -rs tests/test_task_cifar.py -k cuda
say "2. throughput"
timeout 330 $PY benchmarks/throughput.py "${T[@]}" --json "$OUT/throughput.json"
say "3. an environment episode on the generated CIFAR-format data"
wait $DATA_PID; cat "$OUT/cifar-data.log"
timeout 120 $PY benchmarks/gpu_checks.py env-episode --data-dir "$DATA" --device $DEVICE --epochs 2 --interval 0.5 \
    "${VAL[@]}" --json "$OUT/env.json"
say "4. compare: runs per hour"
for rpg in 4 1; do
    seeds=$(( rpg == 1 ? 2 : 4 ))
    start=$(date +%s.%N)
    timeout 150 $PY -m lrpilot compare --task cifar10-resnet18 --controller rule --seeds $seeds --epochs $EPOCHS \
        --data-dir "$DATA" "${OPTION[@]}" --device $DEVICE --runs-per-gpu $rpg --out /tmp/rpg$rpg --force \
        --no-report --no-progress
    took=$($PY -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$(date +%s.%N)")
    $PY benchmarks/gpu_checks.py runs-per-hour /tmp/rpg$rpg --seconds "$took" --json "$OUT/compare-rpg$rpg.json"
done
say "done"
