"""Train every registered model for its default number of steps and keep its final grid: the evidence
that each one learns, and the runs benchmarks/quality.py puts numbers on.

    python benchmarks/models.py                      # every model, MNIST (offline: 5,000 digits)
    python benchmarks/models.py --only dcgan cgan    # some of them
    python benchmarks/models.py --data fashion-mnist --out runs/bench-fashion

Each model runs through the real `gankit train` command; the table gives wall time and the
last logged metrics. Grids land in OUT/NAME/samples/ (and OUT/NAME/samples/recon_* for
models with an encoder); OUT/grids/ collects each model's final grid and a latent walk
(NAME_walk.gif and its PNG strip).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def budget(name: str, scale: float = 1.0) -> int:
    """The model's own default number of steps (its recipe's budget), times `scale`."""
    from gankit.api import make_config
    return max(1, int(make_config(name).train.steps * scale))


def train_one(name: str, steps: int, data: str, out: Path, device: str = "cpu") -> tuple[float, str]:
    """Train OUT/NAME from scratch with `gankit train`; returns (seconds, last metrics)."""
    run = out / name
    if run.exists():
        shutil.rmtree(run)
    cmd = [sys.executable, "-m", "gankit", "train", "--model", name, "--data", data,
           "--steps", str(steps), "--out", str(run), "--device", device,
           "--sample-every", str(max(1, steps // 10)), "--quiet"]
    print("$", " ".join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t0
    last = list(csv.DictReader(open(run / "metrics.csv")))[-1]
    metrics = "  ".join(f"{k} {float(v):.3f}" for k, v in last.items()
                        if k not in ("step", "seconds") and v != "")
    (out / "grids").mkdir(parents=True, exist_ok=True)
    for grid in sorted((run / "samples").glob(f"*_{steps:06d}.png")):
        shutil.copy(grid, out / "grids" / f"{name}_{grid.name}")
    # a latent walk from the final checkpoint, as `gankit interpolate` draws it
    subprocess.run([sys.executable, "-m", "gankit", "interpolate", "--checkpoint", str(run),
                    "--out", str(out / "grids" / f"{name}_walk.gif"), "--seed", "0"],
                   check=True, stdout=subprocess.DEVNULL)
    return seconds, metrics


def main() -> None:
    from gankit.models import MODELS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--out", default="runs/bench-models")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every step budget")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    rows = []
    for name in args.only:
        steps = budget(name, args.scale)
        seconds, metrics = train_one(name, steps, args.data, Path(args.out), args.device)
        rows.append((name, steps, seconds, metrics))
        print(f"{name}: {steps} steps in {seconds:.0f} s  {metrics}", flush=True)

    print("\n| model | steps | seconds | last metrics |\n|---|---|---|---|")
    for name, steps, seconds, metrics in rows:
        print(f"| {name} | {steps} | {seconds:.0f} | {metrics} |")


if __name__ == "__main__":
    main()
