"""Images per second: one process against a torchrun job of N processes, on this machine.

Both sides are the real command, `gankit train` and `python -m torch.distributed.run
--standalone --nproc-per-node N -m gankit train`, with the same per-process batch, so a
step of the job sees N times as many images. Speed comes from the run's own metrics.csv
clock (rank 0's under torchrun), between its first and last rows: start-up (importing
torch, the rendezvous, loading the data) is left out, as is the first logging interval
(warm-up). Runs are interleaved (single, job, single, job, ...) so that a noisy neighbour
hurts both alike; medians are printed, and their ratio in images per second.

Expect little from N processes on a small CPU: each process needs its own core, and on a
2-core machine one process already has one thread and the other core is what the job
adds, minus the gradient exchange every step. The point of torchrun is several GPUs or
machines; this measures what it costs and gains where it runs.

    python benchmarks/ddp.py                          # gan and dcgan, 2 processes, 3 rounds
    python benchmarks/ddp.py --models dcgan --nproc 2 --steps 300 --rounds 5
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def images_per_second(cmd: list[str], out: Path, images_per_step: int) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    first, last = rows[0], rows[-1]
    steps = int(last["step"]) - int(first["step"])
    return steps * images_per_step / (float(last["seconds"]) - float(first["seconds"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["gan", "dcgan"])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--single-threads", type=int, help="threads of the single process "
                   "(default: gankit's default, as a user gets it)")
    args = p.parse_args()
    common = ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--device", "cpu",
              "--quiet", "--log-every", str(max(1, args.steps // 10)),
              "--sample-every", str(10 * args.steps), "--checkpoint-every", str(10 * args.steps)]
    print(f"{os.cpu_count()} CPUs; {args.nproc} processes vs 1; batch {args.batch_size} per "
          f"process; {args.steps} steps; {args.rounds} rounds (medians)")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            single, job = [], []
            for k in range(args.rounds):
                out = Path(tmp) / f"{model}-single-{k}"
                threads = ["--threads", str(args.single_threads)] if args.single_threads else []
                single.append(images_per_second(
                    [sys.executable, "-m", "gankit", "train", "--model", model, *common, *threads,
                     "--out", str(out)], out, args.batch_size))
                out = Path(tmp) / f"{model}-job-{k}"
                job.append(images_per_second(
                    [sys.executable, "-m", "torch.distributed.run", "--standalone",
                     "--nproc-per-node", str(args.nproc), "-m", "gankit", "train", "--model", model,
                     *common, "--out", str(out)], out, args.batch_size * args.nproc))
            s, j = statistics.median(single), statistics.median(job)
            print(f"{model:8s} 1 process {s:8.0f} img/s   {args.nproc} processes {j:8.0f} img/s   "
                  f"ratio {j / s:.2f}   (rounds: {', '.join(f'{a:.0f}/{b:.0f}' for a, b in zip(single, job))})")


if __name__ == "__main__":
    main()
