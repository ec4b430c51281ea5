"""Every model's training speed on a CUDA GPU: eager steps against CUDA-graph replays
(gankit/training/graphs.py), in fp32 and with --precision bf16; then, for the convolutional models,
whether channels-last memory pays on top.

Part 1 times gankit's real training loop (gankit.train with the model's own defaults,
logging and EMA included) at each model's default batch (gan and dcgan also at 4x it),
from its metrics.csv clock between the first and the last row. Part 2 times the step alone
(CUDA events around 300 replays) with the networks and the batch in channels-last layout,
against the same step in the default layout, at batch 64 (dcgan also 256).

    python benchmarks/gpu_speed.py            # needs a CUDA GPU
    python benchmarks/gpu_speed.py --models gan dcgan --steps 600
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings
from pathlib import Path

import torch

import gankit
from gankit.training import graphs
from gankit.models import IMPUTERS, MODELS, build_model, get_model_class

CONV = ("dcgan", "cgan", "wgan-gp", "ae", "vae", "cvae")
BIG = ("gan", "dcgan")   # also timed at 4x their default batch
DEVICE = "cuda"


def loop_speed(name: str, batch: int, steps: int, table: str, **options) -> float:
    """Iterations per second of gankit.train between its first and last log rows."""
    data = table if name in IMPUTERS else "mnist"
    with tempfile.TemporaryDirectory() as out:
        run = gankit.train(model=name, data=data, offline=True, steps=steps, batch_size=batch,
                           out=out, log_every=100, sample_every=10**9, checkpoint_every=10**9,
                           device=DEVICE, progress=False, **options)
    a, b = run.metrics[0], run.metrics[-1]
    return (b["step"] - a["step"]) / (b["seconds"] - a["seconds"])


def step_ms(name: str, batch: int, precision: str, channels_last: bool, reps: int = 300) -> float:
    """Median milliseconds of one replayed step, timed with CUDA events."""
    torch.manual_seed(0)
    model = build_model(name, get_model_class(name).Config(), (1, 28, 28), 10).cuda()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    model.optimizers = model.configure_optimizers()
    n = model.real_batch_size(batch)
    real = (torch.rand(n, 1, 28, 28, device="cuda") * 2 - 1).contiguous(memory_format=fmt)
    labels = torch.randint(10, (n,), device="cuda")
    step = graphs.GraphedStep(model, precision)
    for _ in range(graphs.WARMUP + 3):
        step(real, labels)
    assert step.captured, step.note
    times = []
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps // 5):
            step(real, labels)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / (reps // 5))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[*MODELS, *IMPUTERS])
    ap.add_argument("--steps", type=int, default=600, help="steps per timed run (log rows every 100)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")

    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "table.csv"   # 2,000 rows x 8 columns, a fifth of the cells missing
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2000, 8, generator=gen)
        rows = [",".join("" if torch.rand(1, generator=gen).item() < 0.2 else f"{v:.4f}"
                         for v in row.tolist()) for row in x]
        table.write_text(",".join(f"c{i}" for i in range(8)) + "\n" + "\n".join(rows) + "\n")

        print("\n1. gankit's training loop (it/s); speed-up of graphs over eager in brackets")
        print(f"{'model':8s} {'batch':>5s} {'eager':>8s} {'graphs':>8s} {'(x)':>6s} "
              f"{'graphs+bf16':>11s}")
        for name in args.models:
            base = get_model_class(name).train_defaults.get("batch_size", 32)
            for batch in (base, 4 * base) if name in BIG else (base,):
                eager = loop_speed(name, batch, args.steps, str(table), cuda_graphs=False)
                graph = loop_speed(name, batch, args.steps, str(table))
                bf16 = loop_speed(name, batch, args.steps, str(table), precision="bf16")
                print(f"{name:8s} {batch:5d} {eager:8.0f} {graph:8.0f} {graph / eager:5.1f}x "
                      f"{bf16:11.0f}", flush=True)

    print("\n2. one replayed step (ms), default layout vs channels-last")
    print(f"{'model':8s} {'batch':>5s} {'fp32':>7s} {'fp32 CL':>7s} {'bf16':>7s} {'bf16 CL':>7s}")
    for name in [m for m in args.models if m in CONV]:
        for batch in (64, 256) if name in BIG else (64,):
            ms = [step_ms(name, batch, p, cl) for p in ("fp32", "bf16") for cl in (False, True)]
            print(f"{name:8s} {batch:5d} " + " ".join(f"{v:7.3f}" for v in ms), flush=True)


if __name__ == "__main__":
    main()
