"""Training throughput of gankit's `gan` against a plain PyTorch loop doing the same maths.

The plain loop is written the way a typical user ports the Keras example: nn.Sequential,
Sigmoid + BCELoss, zero_grad/backward/step, Adam with torch's defaults, batches drawn by
random index from a float tensor, torch's default thread count, no per-step printing.
Both sides train the same architecture (Keras BatchNorm settings, half-batch D updates on
real then fake images made by G in inference mode, a full batch for G) and see the same
number of samples. gankit is timed through its real training loop (gankit.training.trainer.train,
metrics logging included), from its metrics.csv clock, excluding start-up.

Runs are interleaved (gankit, plain, gankit, plain, ...) so a noisy neighbour hurts both
alike; the ratio of medians is printed. Usage:

    python benchmarks/throughput.py            # batch 32 and 128, quiet and busy, 5 rounds
    python benchmarks/throughput.py --quick    # quiet machine, default threads only
    python benchmarks/throughput.py --same-threads   # both loops on the free cores' count
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
import warnings

import torch
from torch import nn

import gankit
from gankit.config import DataConfig
from gankit.data import load_data, to_float
from gankit.training.cpu import available_cores, training_threads

TORCH_DEFAULT_THREADS = torch.get_num_threads()


def plain_gan(image_dim: int = 784, latent: int = 100):
    def bn(n):   # Keras BatchNormalization(momentum=0.8) defaults
        return nn.BatchNorm1d(n, eps=1e-3, momentum=0.2)
    G = nn.Sequential(nn.Linear(latent, 256), nn.LeakyReLU(0.2), bn(256),
                      nn.Linear(256, 512), nn.LeakyReLU(0.2), bn(512),
                      nn.Linear(512, 1024), nn.LeakyReLU(0.2), bn(1024),
                      nn.Linear(1024, image_dim), nn.Tanh())
    D = nn.Sequential(nn.Flatten(), nn.Linear(image_dim, 512), nn.LeakyReLU(0.2),
                      nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1), nn.Sigmoid())
    return G, D


def plain_loop(X: torch.Tensor, batch: int, steps: int, threads: int | None = None) -> float:
    """The typical user's loop; returns iterations per second."""
    torch.set_num_threads(threads or TORCH_DEFAULT_THREADS)
    dev = X.device
    G, D = (m.to(dev) for m in plain_gan())
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    half = batch // 2
    t0 = time.perf_counter()
    for _ in range(steps):
        imgs = X[torch.randint(0, X.shape[0], (half,), device=dev)]
        G.eval()
        with torch.no_grad():
            gen = G(torch.randn(half, 100, device=dev)).view(-1, 1, 28, 28)
        G.train()
        opt_d.zero_grad()
        bce(D(imgs), torch.ones(half, 1, device=dev)).backward()
        opt_d.step()
        opt_d.zero_grad()
        bce(D(gen), torch.zeros(half, 1, device=dev)).backward()
        opt_d.step()
        opt_g.zero_grad()
        bce(D(G(torch.randn(batch, 100, device=dev))), torch.ones(batch, 1, device=dev)).backward()
        opt_g.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def gankit_loop(batch: int, steps: int, threads: int | None = None, device: str = "cpu"):
    """gankit's real training loop: (iterations per second between its first and last log
    row, the CPU threads it chose or was given)."""
    with tempfile.TemporaryDirectory() as out:
        run = gankit.train(model="gan", data="mnist", offline=True, steps=steps, batch_size=batch,
                           out=out, log_every=50, sample_every=10**9, checkpoint_every=10**9,
                           device=device, threads=threads, progress=False)
    a, b = run.metrics[0], run.metrics[-1]
    return (b["step"] - a["step"]) / (b["seconds"] - a["seconds"]), run.config.train.threads


def flops_per_iteration(batch: int) -> float:
    """Nominal FLOPs of one iteration's matrix products (backward = 2x forward)."""
    g = 100 * 256 + 256 * 512 + 512 * 1024 + 1024 * 784
    d = 784 * 512 + 512 * 256 + 256 * 1
    half = batch // 2
    fwd = lambda n, macs: 2 * n * macs
    return (fwd(half, g)                          # fakes for D (inference)
            + 3 * fwd(half, d) * 2                # D on real, D on fake: forward + backward
            + 3 * (fwd(batch, g) + fwd(batch, d)))  # G step through D


def matmul_peak(threads: int, n: int = 1024, reps: int = 20) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def spin():
    while True:
        pass


class BusyNeighbour:
    """Another process holding one core at 100%, as on a shared machine (or none)."""

    def __init__(self, busy: bool):
        self.busy, self.proc = busy, None

    def __enter__(self):
        if self.busy:
            self.proc = mp.Process(target=spin, daemon=True)
            self.proc.start()
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            self.proc.join()


def compare(X, batch, steps, rounds, busy, threads=None, device="cpu", plain_threads=None):
    """Interleave gankit and the plain loop; print medians, GFLOP/s and the ratio."""
    ours, theirs, chosen = [], [], []
    with BusyNeighbour(busy):
        for _ in range(rounds):
            speed, used = gankit_loop(batch, steps, threads, device)
            ours.append(speed)
            chosen.append(used)
            theirs.append(plain_loop(X, batch, steps, plain_threads))
    mo, mt = statistics.median(ours), statistics.median(theirs)
    flops = flops_per_iteration(batch)
    label = (f"{device}" if device != "cpu" else
             f"{'one core busy' if busy else 'quiet'}, threads "
             f"{'/'.join(map(str, sorted(set(chosen))))} vs {plain_threads or TORCH_DEFAULT_THREADS}")
    print(f"{label:32s} batch {batch:4d}: gankit {mo:6.1f} it/s ({mo * flops / 1e9:5.1f} GFLOP/s)  "
          f"plain {mt:6.1f} it/s ({mt * flops / 1e9:5.1f} GFLOP/s)  ratio {mo / mt:.2f}x  "
          f"[runs: {' '.join(f'{v:.0f}' for v in ours)} | {' '.join(f'{v:.0f}' for v in theirs)}]",
          flush=True)
    return mo / mt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="quiet machine, default threads only")
    ap.add_argument("--same-threads", action="store_true",
                    help="only compare both loops, on the count of cores other processes leave free")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda to compare both loops on a GPU")
    args = ap.parse_args()

    data = load_data(DataConfig(data="mnist", offline=True))
    warnings.filterwarnings("ignore", message="mnist: using only")   # said once is enough
    X = to_float(data.images).to(args.device)
    cores = available_cores()
    print(f"torch {torch.__version__}, {cores} cores, torch default threads {TORCH_DEFAULT_THREADS}, "
          f"gankit threads: the cores free when a run starts, data {data.name} ({len(data)} images)")
    print(f"matmul peak (1024^2 fp32): {matmul_peak(1):.1f} GFLOP/s on 1 thread, "
          f"{matmul_peak(cores):.1f} GFLOP/s on {cores}")
    print("rows: 'threads A vs B' = gankit's threads vs the plain loop's; GFLOP/s counts the "
          "nominal matrix-product FLOPs of one iteration, the same for both")
    if args.device != "cpu":
        print(f"device {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}")
        for batch in args.batches:
            compare(X, batch, args.steps, args.rounds, False, None, args.device)
        return
    if args.same_threads:   # what the loop itself gains, thread policy aside
        threads = training_threads()[0]
        for batch in args.batches:
            compare(X, batch, args.steps, args.rounds, False, threads, plain_threads=threads)
        return
    scenarios = [(False, None)] if args.quick else [(False, None), (False, cores), (True, None)]
    for busy, threads in scenarios:
        for batch in args.batches:
            compare(X, batch, args.steps, args.rounds, busy, threads)


if __name__ == "__main__":
    main()
